"""Build the Windows ``rescue.exe`` on Debian: PyInstaller run by a Windows CPython under Wine.

    rescue-build windows --out DIR  ->  DIR/rescue.exe, DIR/_internal/... (PyInstaller's folder mode)

The pinned inputs come from builder/wine.py: the Windows CPython sdist (SHA-256 pinned; the PSF's
Authenticode signature on python.exe and its DLLs is checked here), the win_amd64 wheels of
windows-runtime.lock (what rescue.exe runs) and of windows-build.lock (PyInstaller, whose wheel carries
the Windows bootloader, and its dependencies), a throwaway Wine prefix, and the test-only ProcessPrng
shim that Rust extensions need under Wine 8: the shim lives in the prefix's system32 only, never in the
output. Here: the freeze (the Linux freeze's hidden imports minus the Linux-only packages), the DLL
check (every import in the bundle or in WinPE 10's System32: builder/pe_imports.py) and the smoke test
under Wine (builder/freeze.py's: help, the guide's refusal without a terminal, an encrypted backup,
list, verify and restore of a small disk file, restored bytes compared).

The frozen folder is cached in the work directory by a hash of the sources and the pinned inputs, like
the Linux freeze; ``DIR`` receives a copy. The layout and `build_windows` are what the WinPE media build
(builder/winpe.py) takes: keep both stable.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder import freeze, pe_imports, wine
from builder.errors import BuildError

BUILD_LOCK = Path(__file__).with_name("windows-build.lock")
# Linux-only: pyudev needs fcntl and libudev, pyfuse3/trio serve FUSE mounts (no FUSE on Windows);
# urwid's display module for Windows consoles replaces the POSIX one.
LINUX_ONLY = ("pyudev", "pyfuse3", "trio", "urwid.display._posix_raw_display")
HIDDEN = (*(m for m in freeze.HIDDEN if m not in LINUX_ONLY), "urwid.display._win32_raw_display")
# _wmi: WinPE has no WMI without an optional component; the platform module falls back to the
# registry without it.
EXCLUDE = (*freeze.EXCLUDE, "pyudev", "pyfuse3", "trio", "_wmi")
# Shadows the interpreter's _wmi.pyd while PyInstaller runs: PyInstaller asks platform.platform(),
# which queries WMI, and Wine 8 aborts the process there (propsys.VariantToString is not implemented).
NO_WMI = 'raise ImportError("no WMI while freezing under Wine (builder/windows.py)")\n'
MARKER = "rescue.exe"
# `rescue guide` without a console (the smoke test's stdin is a pipe): it imports urwid, then refuses, exit 3
GUIDE_REFUSAL = (3, "needs a terminal")
FREEZE_TIMEOUT = 1200
# Drive letters in the Wine prefixes: P the interpreter, S its wheels, R the checkout, B the freeze's
# work folder, X a frozen folder, T the host's temporary folder (the smoke test's and the tests' files).
PY, SITE, SRC, WORK, BUNDLE, TEMP = "P", "S", "R", "B", "X", "T"


@dataclass
class WindowsBuild:
    folder: Path  # the --out folder: rescue.exe and _internal/
    exe: Path
    frozen: Path  # the cached frozen folder it was copied from
    size: int  # bytes in the folder
    dlls: int  # distinct DLL names the bundle imports, every one found
    cached: bool
    seconds: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    """The pinned inputs, fetched and checked (builder/wine.py caches them by hash)."""

    python: Path
    runtime_wheels: Path
    build_wheels: Path
    shim: Path  # TEST-ONLY: goes into Wine prefixes, never into the output

    def identity(self) -> str:
        locks = b"".join(p.read_bytes() for p in (wine.RUNTIME_LOCK, BUILD_LOCK))
        return f"{wine.SDIST.sha256}|{hashlib.sha256(locks).hexdigest()}"


def signed_files(python: Path) -> list[Path]:
    """The interpreter's files that carry the PSF's signature and go into the bundle (or start it)."""
    return [python / "python.exe", python / "python3.dll", *sorted(python.glob("python3??.dll"))]


def fetch_inputs(cache: Path) -> Inputs:
    cache.mkdir(parents=True, exist_ok=True)
    python = wine.windows_python(cache)
    for f in signed_files(python):
        wine.check_signature(f)
    return Inputs(python, wine.fetch_wheels(wine.RUNTIME_LOCK, cache), wine.fetch_wheels(BUILD_LOCK, cache),
                  wine.build_prng_shim(cache))


def source_hash(inputs: Inputs) -> str:
    """Hash of what ends up in the frozen folder: our sources and the pinned inputs."""
    h = hashlib.sha256()
    h.update(f"{inputs.identity()}|{HIDDEN}{EXCLUDE}{NO_WMI}".encode())
    files = [freeze.ENTRY, Path(__file__)]
    for pkg in ("core", "rescue"):
        files += sorted((freeze.ROOT / pkg).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(freeze.ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pyinstaller_args() -> list[str]:
    """PyInstaller's command line after ``python.exe -m PyInstaller``, paths as the prefix sees them."""
    args = ["--noconfirm", "--log-level", "WARN", "--clean", "--onedir", "--name", "rescue",
            "--paths", wine.wine_path(SRC), "--distpath", wine.wine_path(WORK, "dist"),
            "--workpath", wine.wine_path(WORK, "build"), "--specpath", wine.wine_path(WORK),
            "--collect-submodules", "core", "--collect-submodules", "rescue"]
    for mod in HIDDEN:
        args += ["--hidden-import", mod]
    for mod in EXCLUDE:
        args += ["--exclude-module", mod]
    return [*args, wine.wine_path(SRC, *freeze.ENTRY.relative_to(freeze.ROOT).parts)]


LAUNCHER = '''#!{python}
"""rescue.exe under Wine, for tests and the build's smoke test (written by builder/windows.py).

Host paths in the arguments become paths on the prefix's drives (DRIVES); the prefix has no drive
onto the host's root, so nothing else of the host is reachable. Standard input passes through when it
is a pipe, else it is an empty pipe: python.exe cannot use Wine's handles for host files or terminals
as standard streams, and Windows' NUL device counts as a console (isatty), so a password prompt would
wait on a console that is not there. Output is always piped, for the same reason.
"""
import os, stat, subprocess, sys

WINE = {wine!r}
ENV = {env!r}
EXE = {exe!r}
DRIVES = {drives!r}
DRIVE_C = {drive_c!r}


def win(arg):
    head, sep, tail = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    for root, letter in DRIVES:
        if tail == root or tail.startswith(root + "/"):
            return head + sep + letter + ":\\\\" + tail[len(root):].lstrip("/").replace("/", "\\\\")
    return arg


# A working folder outside the drives would reach the host through \\\\?\\unix (its /proc, /sys): the
# engine would then read Linux's mount table as its own. Such a caller's folder becomes drive C:.
cwd = os.getcwd()
if not any(cwd == root or cwd.startswith(root + "/") for root, _ in DRIVES):
    cwd = DRIVE_C
piped = stat.S_ISFIFO(os.fstat(0).st_mode)
proc = subprocess.run([WINE, EXE, *map(win, sys.argv[1:])], env={{**os.environ, **ENV}},
                      input=None if piped else b"", cwd=cwd,
                      capture_output=True, check=False)
sys.stdout.buffer.write(proc.stdout)
sys.stderr.buffer.write(proc.stderr)
sys.exit(proc.returncode)
'''


def launcher(folder: Path, prefix: wine.Prefix, path: Path) -> Path:
    """Write ``path``: an executable that runs ``folder``/rescue.exe in ``prefix`` (drives X, T, R are
    mapped here onto the folder, the temporary folder and the checkout) with host paths translated."""
    drives = {BUNDLE: folder.resolve(), TEMP: Path(tempfile.gettempdir()).resolve(), SRC: freeze.ROOT}
    for letter, target in drives.items():
        prefix.map_drive(letter, target)
    # longest root first, so that a folder inside another maps to its own drive
    pairs = sorted(((str(t), letter) for letter, t in drives.items()), key=lambda p: -len(p[0]))
    path.write_text(LAUNCHER.format(python=sys.executable, wine=prefix.wine, env=prefix.env,
                                    exe=wine.wine_path(BUNDLE, MARKER), drives=pairs,
                                    drive_c=str(prefix.path / "drive_c")))
    path.chmod(0o755)
    return path


def _freeze(inputs: Inputs, work: Path, frozen: Path) -> None:
    """Freeze under Wine, check the DLLs, smoke-test; the result moved to ``frozen`` only if all pass."""
    tmp = Path(tempfile.mkdtemp(prefix="windows-freeze-", dir=work))
    prefix = None
    try:
        site = tmp / "site"
        wine.install_wheels(inputs.runtime_wheels, site)
        wine.install_wheels(inputs.build_wheels, site)
        (site / "_wmi.py").write_text(NO_WMI)
        prefix = wine.Prefix(tmp / "prefix", shim=inputs.shim)
        for letter, target in ((PY, inputs.python), (SITE, site), (SRC, freeze.ROOT), (WORK, tmp)):
            prefix.map_drive(letter, target)
        # Bytecode goes inside the prefix, never into the interpreter's cache folder or the checkout.
        env = {"PYTHONPATH": wine.wine_path(SITE), "PYTHONPYCACHEPREFIX": "C:\\pycache"}
        proc = prefix.run([wine.wine_path(PY, "python.exe"), "-m", "PyInstaller", *pyinstaller_args()],
                          env=env, timeout=FREEZE_TIMEOUT)
        dist = tmp / "dist" / "rescue"
        if proc.returncode != 0 or not (dist / MARKER).is_file():
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise BuildError(detail=f"PyInstaller under Wine exited with {proc.returncode}: " + " | ".join(tail))
        pe_imports.check_bundle(dist)
        freeze.smoke_test(launcher(dist, prefix, tmp / "rescue-wine"), GUIDE_REFUSAL)
        shutil.rmtree(frozen, ignore_errors=True)
        dist.replace(frozen)
    finally:
        if prefix is not None:
            prefix.close()
        shutil.rmtree(tmp, ignore_errors=True)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_out_dir(out_dir: Path) -> None:
    """``out_dir`` may be absent, empty or an earlier build; any other folder is not ours to replace."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(detail=f"{out_dir} is a file: --out names a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise BuildError(detail=f"{out_dir} is not empty and holds no earlier {MARKER}: choose another --out")


def install(frozen: Path, out_dir: Path) -> None:
    """Copy the frozen folder to ``out_dir``, replacing an earlier build there (`check_out_dir`)."""
    check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        shutil.copytree(frozen, tmp / "new")
        if out_dir.exists():
            out_dir.replace(tmp / "old")
        (tmp / "new").replace(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_windows(out_dir: Path, work: Path, wine_cache: Path | None = None) -> WindowsBuild:
    """The folder-mode rescue.exe in ``out_dir`` (``out_dir``/rescue.exe, ``out_dir``/_internal/), frozen
    or taken from ``work``'s cache; downloads and the shim are cached in ``wine_cache`` (default
    ``work``/wine). BuildError (one line) on any failure, MissingTool naming the Debian package."""
    check_out_dir(out_dir)  # before minutes of work
    log: list[str] = []
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    inputs = fetch_inputs(wine_cache or work / "wine")
    log.append(f"inputs: {wine.SDIST.name} {wine.SDIST.version} (signature checked), "
               f"{len(list(inputs.runtime_wheels.glob('*.whl')))} runtime and "
               f"{len(list(inputs.build_wheels.glob('*.whl')))} build wheels")
    seconds["inputs"] = time.monotonic() - t0
    t0 = time.monotonic()
    frozen = work / f"windows-{source_hash(inputs)}"
    cached = (frozen / MARKER).is_file()
    if not cached:
        _freeze(inputs, work, frozen)
    seconds["freeze"] = time.monotonic() - t0
    dlls = pe_imports.check_bundle(frozen)
    system = pe_imports.system_dlls(frozen)
    api_sets = [d for d in system if d.startswith(pe_imports.API_SET_PREFIXES)]
    log.append("from WinPE's System32: " + ", ".join(d for d in system if d not in api_sets)
               + f" and {len(api_sets)} API sets")
    install(frozen, out_dir)
    size = folder_size(out_dir)
    log.append(f"rescue.exe: {'cached' if cached else 'frozen and smoke-tested under Wine'} {frozen.name}, "
               f"{sum(1 for p in out_dir.rglob('*') if p.is_file())} files, {size / (1 << 20):.1f} MiB")
    return WindowsBuild(out_dir, out_dir / MARKER, frozen, size, dlls, cached, seconds, log)
