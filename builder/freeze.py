"""Freeze the ``rescue`` CLI (core + rescue packages) with PyInstaller in folder mode, then smoke-test it.

Folder mode, not one-file: a one-file binary unpacks itself to /tmp on every start, which costs seconds
and RAM on a rescue system that runs from RAM already. The result is cached in the work directory by a
hash of the sources, the Python and the PyInstaller version, so unchanged code is not frozen again.

The smoke test runs the frozen binary as a user would: --version/--help (the start-up self-test of
crypto and compression runs first), then an encrypted backup, list, verify and restore of a small MBR
disk image, comparing the restored bytes. This catches modules or shared libraries PyInstaller missed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from builder.errors import BuildError
from rescue.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
HOOK = Path(__file__).with_name("pyi_rth_findlib.py")
ENTRY = Path(__file__).with_name("frozen_main.py")
# Imported lazily or from C, so PyInstaller's import scan may miss them; the smoke test proves the set.
HIDDEN = ("zstandard", "blake3", "xxhash", "pyudev", "click", "cryptography.hazmat.primitives.kdf.argon2",
          "pyfuse3", "trio", "rescue.cli",
          # rescue.cli imports its commands by name, when they run (its table is the one list of them):
          *(f"rescue.commands.{m}" for m in COMMANDS.values()),
          # `rescue guide` imports urwid only when it runs; urwid picks its terminal driver at run time
          # (a Windows build adds urwid.display._win32_raw_display), and urwid.display looks up the
          # specs of its other displays by name when it is imported (they are loaded only if used):
          "rescue.guide.app", "urwid", "urwid.display.raw", "urwid.display._posix_raw_display",
          *(f"urwid.display.{m}" for m in ("html_fragment", "lcd", "web", "websocket")))
# Pulled in by optional integrations of the packages above (pyudev's GUI bindings, ...), never used:
# without excluding them the folder grows from ~35 MB to ~130 MB.
EXCLUDE = ("tkinter", "numpy", "IPython", "jedi", "PyQt5", "PySide2", "wx", "gi", "matplotlib", "pytest",
           "hypothesis", "setuptools", "pip")
LIB_DIRS = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/lib64"))
MiB = 1 << 20


def _pyinstaller_version() -> str:
    try:
        import PyInstaller
    except ImportError:
        raise BuildError(detail="PyInstaller is missing: pip install 'rescue-imaging[build]' "
                                "(or: pip install pyinstaller)") from None
    return str(PyInstaller.__version__)


def source_hash() -> str:
    """Hash of everything that ends up in the frozen folder."""
    h = hashlib.sha256()
    h.update(f"{sys.version}|{_pyinstaller_version()}|{HIDDEN}{EXCLUDE}".encode())
    files = [HOOK, ENTRY, Path(__file__)]
    for pkg in ("core", "rescue"):
        files += sorted((ROOT / pkg).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _libudev() -> Path:
    for d in LIB_DIRS:
        p = d / "libudev.so.1"
        if p.exists():
            return p
    raise BuildError(detail="libudev.so.1 not found: install the Debian package libudev1")


def freeze(work: Path, log: list[str]) -> Path:
    """The frozen folder (containing the ``rescue`` executable), built or taken from the cache."""
    out = work / f"frozen-{source_hash()}"
    exe = out / "rescue" / "rescue"
    if exe.exists():
        log.append(f"frozen CLI: cached {out.name}")
        return out / "rescue"
    tmp = Path(tempfile.mkdtemp(prefix="freeze-", dir=work))
    try:
        cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--clean",
               "--onedir", "--strip", "--name", "rescue", "--paths", str(ROOT),
               "--distpath", str(tmp / "dist"), "--workpath", str(tmp / "build"), "--specpath", str(tmp),
               "--runtime-hook", str(HOOK), "--add-binary", f"{_libudev()}:.",
               "--collect-submodules", "core", "--collect-submodules", "rescue"]
        for mod in HIDDEN:
            cmd += ["--hidden-import", mod]
        for mod in EXCLUDE:
            cmd += ["--exclude-module", mod]
        cmd.append(str(ENTRY))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise BuildError(detail="PyInstaller did not finish within 900 s") from None
        if proc.returncode != 0:
            raise BuildError(detail="PyInstaller failed: " + " | ".join(proc.stderr.strip().splitlines()[-3:]))
        smoke_test(tmp / "dist" / "rescue" / "rescue")
        shutil.rmtree(out, ignore_errors=True)
        (tmp / "dist").replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.append(f"frozen CLI: built {out.name}")
    return out / "rescue"


def _mini_disk(path: Path) -> None:
    """8 MiB MBR disk, one partition (type 0x83) from LBA 2048 holding 1 MiB of random data."""
    size = 8 * MiB
    entry = bytes([0x80, 0, 0, 0, 0x83, 0, 0, 0]) + (2048).to_bytes(4, "little") + \
        (size // 512 - 2048).to_bytes(4, "little")
    mbr = bytearray(512)
    mbr[440:444] = b"\x5c\x1a\x0e\x7e"  # disk signature
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as f:
        f.truncate(size)
        f.write(mbr)
        f.seek(2 * MiB)
        f.write(random.Random(7).randbytes(MiB))


def smoke_test(exe: Path, guide_refusal: tuple[int, str] = (3, "needs a terminal")) -> None:
    """Run the frozen CLI through a backup/list/verify/restore round trip; BuildError on any failure.
    ``guide_refusal``: the exit code and message of `rescue guide` without a terminal (the Windows build
    has no guide: it refuses with another code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RESCUE_"))}
    with tempfile.TemporaryDirectory(prefix="frozen-smoke-") as d:
        t = Path(d)

        def rescue(*args: str, password: bool = False) -> str:
            e = {**env, "RESCUE_PASSWORD": "smoke test"} if password else env
            try:
                proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=e, timeout=300,
                                      check=False, cwd=t)
            except subprocess.TimeoutExpired:
                raise BuildError(detail=f"frozen `rescue {' '.join(args[:2])}` did not finish within 300 s"
                                 ) from None
            if proc.returncode != 0:
                raise BuildError(detail=f"frozen `rescue {' '.join(args[:2])}` exited with {proc.returncode}: "
                                        + " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:]))
            return proc.stdout

        if "backup" not in rescue("--help"):
            raise BuildError(detail="frozen `rescue --help` does not list the backup command")
        rescue("--version")
        # the guide without a terminal: it imports its toolkit, then refuses with exit 3
        guide = subprocess.run([str(exe), "guide"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               env=env, timeout=60, check=False, cwd=t)
        if guide.returncode != guide_refusal[0] or guide_refusal[1] not in guide.stderr:
            raise BuildError(detail=f"frozen `rescue guide` exited with {guide.returncode}: {guide.stderr.strip()}")
        _mini_disk(t / "src.img")
        (t / "pw").write_text("smoke test\n")
        # --allow-ram: the build machine's temporary folder may be a tmpfs; this image is thrown away
        rescue("backup", str(t / "src.img"), str(t / "bk"), "--password-file", str(t / "pw"), "--allow-ram")
        listing = json.loads(rescue("list", str(t / "bk"), "--json"))
        if len(listing) != 1 or not listing[0].get("complete"):
            raise BuildError(detail=f"frozen `rescue list` shows {listing!r}")
        rescue("verify", str(t / "bk"), password=True)
        with (t / "dst.img").open("wb") as f:
            f.truncate(8 * MiB)
        rescue("restore", str(t / "bk"), str(t / "dst.img"), "--yes", password=True)
        if (t / "dst.img").read_bytes() != (t / "src.img").read_bytes():
            raise BuildError(detail="frozen `rescue restore` did not reproduce the source disk")
