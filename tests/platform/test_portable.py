"""The engine and the CLI stay portable to Windows: files are opened and read through `core.platform.files`.

On Windows ``os.open`` without ``O_BINARY`` is text mode (a silent corruption of every image), and
``os.pread``/``os.pwrite``/``os.preadv``/``posix_fadvise`` do not exist; ``fcntl``, ``pyudev``,
``pyfuse3``, ``trio`` and ``resource`` cannot be imported there. Only the modules listed in
`LINUX_ONLY` (the one list of them) may use those directly: they run only on Linux, and nothing on the
path of a backup, verify, restore or list of image files imports them at module level on Windows.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The one list of Linux-only modules (paths from the repository root; a folder covers what is below it).
LINUX_ONLY = {
    "core/platform/files.py": "the platform module itself: its Linux branch makes the calls",
    "core/io/spillfs.py": "FUSE server (pyfuse3, trio) that ntfsresize shrinks through",
    "rescue/mount/fusefs.py": "FUSE filesystem of `rescue mount` (pyfuse3, trio)",
    "core/remote/": "sshfs and rclone mounts of remote folders (FUSE clients, Linux mount namespace)",
    "core/multicast/": "restore sessions: udpcast, iproute2 and the FUSE stream folder (pyfuse3, trio)",
}

# Modules with a Windows branch: type-checked as Windows sees them too (mypy skips the other platform's
# branch, so `mypy --strict core` on Linux never looks at these lines).
WINDOWS_BRANCHES = ["core/platform/files.py", "core/platform/process.py", "core/platform/ramfs.py"]

# Calls that must go through core.platform.files.
BANNED_CALLS = {"open", "pread", "pwrite", "preadv", "pwritev", "posix_fadvise"}
# Modules Windows' Python does not have (or we do not ship there).
LINUX_MODULES = {"fcntl", "resource", "pyudev", "pyfuse3", "trio", "termios"}


def _linux_only(rel: str) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in LINUX_ONLY)


def _sources() -> list[tuple[str, ast.Module]]:
    out = []
    for top in ("core", "rescue"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            out.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    return out


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import: the top level, and inside top-level if/try blocks."""
    out: list[ast.stmt] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
    return out


def test_linux_only_list_names_existing_modules() -> None:
    for rel in LINUX_ONLY:
        assert (ROOT / rel).exists(), f"LINUX_ONLY names {rel}, which does not exist"


def _banned_calls(rel: str, tree: ast.Module) -> list[str]:
    return [f"{rel}:{node.lineno}: os.{node.func.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            and node.func.attr in BANNED_CALLS]


def _linux_imports(rel: str, tree: ast.Module) -> list[str]:
    found = []
    for node in _module_level(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module.split(".")[0]]
        found += [f"{rel}:{node.lineno}: import {name}" for name in names if name in LINUX_MODULES]
    return found


def test_files_opened_and_read_only_through_platform_files() -> None:
    sources = _sources()
    assert len(sources) > 100  # the scan really saw the tree
    found = [v for rel, tree in sources if not _linux_only(rel) for v in _banned_calls(rel, tree)]
    assert not found, "use core.platform.files (binary open, positional I/O on Windows):\n" + "\n".join(found)


def test_no_linux_module_imported_at_module_level() -> None:
    found = [v for rel, tree in _sources() if not _linux_only(rel) for v in _linux_imports(rel, tree)]
    assert not found, ("Windows cannot import these: import where used, or list the module in "
                       "LINUX_ONLY:\n" + "\n".join(found))


def test_the_scan_catches_what_it_forbids() -> None:
    # The checks above pass on a clean tree; this shows they would see a violation at all.
    tree = ast.parse("import os\ntry:\n    import fcntl\nexcept ImportError:\n    pass\n"
                     "def f():\n    import resource\n    return os.open('x', os.O_RDONLY)\n")
    assert _banned_calls("m.py", tree) == ["m.py:8: os.open"]
    assert _linux_imports("m.py", tree) == ["m.py:3: import fcntl"]  # the one inside f() runs only when called
    assert _linux_only("core/remote/s3.py") and not _linux_only("core/io/reader.py")


def test_windows_branches_are_mypy_strict_clean() -> None:
    # --follow-imports=silent: the Linux-only modules they import are not this check's business.
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--platform", "win32", "--follow-imports=silent",
                        *WINDOWS_BRANCHES], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout[-4000:] + r.stderr[-1000:]
