"""The Windows code path of the core, run for real: Windows CPython under Wine on image files.

One Wine prefix for the module (`builder.wine`: the pinned Windows CPython, our win_amd64 runtime wheels,
the test-only ProcessPrng shim), our ``core`` and ``rescue`` imported from the checkout through a mapped
drive. Wine calls are few (each costs about a second): one script checks the file primitives, one the
folder lock between two Windows processes, and the CLI runs backup, verify and restore.

What is proven: `core.platform.files` writes and reads bytes as they are (Windows' text mode would turn
``\\n`` into ``\\r\\n`` and stop reading at 0x1A, shown here on a plain ``os.open``); positional reads and
writes from two threads at once land where they were asked to, whatever the file position; a folder lock
held by one Windows process refuses a second and one left by a killed process is taken over; an
encrypted, split backup made by ``python -m rescue`` on Windows verifies and restores bit-exact both
there and with the Linux CLI, and the other way round; an incremental made and merged on Windows
restores on Linux; a backup folder on WinPE's RAM disk is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from builder import wine
from tests.images import run_rescue, small_disk

ROOT = Path(__file__).resolve().parents[2]
# Downloads and builds keyed by hash (sdist, wheels, shim): shared by test runs and by the Windows build.
CACHE = Path(os.environ.get("RESCUE_WINE_CACHE", "/var/tmp/rescue-wine-cache"))
PASSWORD = "s3cret words"


class WinPython:
    """python.exe in a Wine prefix: P: the interpreter, S: its wheels, R: the checkout, W: a work folder."""

    def __init__(self, prefix: wine.Prefix, work: Path) -> None:
        self.prefix = prefix
        self.work = work
        # Bytecode goes inside the prefix, never into the checkout (R: is the developer's tree).
        self.env = {"PYTHONPATH": "S:\\;R:\\", "PYTHONPYCACHEPREFIX": "C:\\pycache", "PYTHONUTF8": "1",
                    "RESCUE_DEBUG": "1"}  # a failure shows its traceback

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return self.prefix.run(["P:\\python.exe", *args], env={**self.env, **(env or {})}, timeout=600)

    def script(self, name: str, text: str) -> subprocess.CompletedProcess[bytes]:
        (self.work / name).write_text(text)
        return self.run(wine.wine_path("W", name))

    def rescue(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return self.run("-m", "rescue", *args, env=env)


@pytest.fixture(scope="module")
def winpy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WinPython]:
    CACHE.mkdir(parents=True, exist_ok=True)
    base = tmp_path_factory.mktemp("wine")
    python = wine.windows_python(CACHE)
    wine.check_signature(python / "python.exe")
    site = base / "site"
    wine.install_wheels(wine.fetch_wheels(wine.RUNTIME_LOCK, CACHE), site)
    prefix = wine.Prefix(base / "prefix", shim=wine.build_prng_shim(CACHE))
    work = base / "work"
    work.mkdir()
    for letter, folder in (("P", python), ("S", site), ("R", ROOT), ("W", work)):
        prefix.map_drive(letter, folder)
    try:
        yield WinPython(prefix, work)
    finally:
        prefix.close()


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


PRIMITIVES = r"""
import json, os, sys, threading
from core.platform import files
out = {"platform": sys.platform, "windows": files.WINDOWS, "binary_flag": files.BINARY}

# Text mode: 7 bytes with \n and 0x1A, through the module and through a plain os.open.
data = b"a\nb\x1ac\r\n"
fd = files.open_fd("W:\\bin.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
out["wrote"] = files.pwrite(fd, data, 0)
out["pread"] = files.pread(fd, 100, 0).hex()
os.lseek(fd, 0, 0)
out["read"] = os.read(fd, 100).hex()
os.close(fd)
fd = os.open("W:\\text.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.write(fd, data)
os.lseek(fd, 0, 0)
out["text_read"] = os.read(fd, 100).hex()
os.close(fd)

# Two threads, interleaved 4 KiB blocks: each writes its own, then reads the other's, positionally;
# the file position is moved about meanwhile and must not matter.
BLOCK, N = 4096, 256
fd = files.open_fd("W:\\threads.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
errors = []
def block(i):
    return bytes([i % 251]) * BLOCK
def writer(parity):
    try:
        for i in range(parity, N, 2):
            os.lseek(fd, 12345, 0)
            view = memoryview(bytearray(block(i))) if parity else block(i)  # writable and read-only buffers
            assert files.pwrite(fd, view, i * BLOCK) == BLOCK
    except BaseException as e:
        errors.append(repr(e))
def reader(parity):
    try:
        buf = bytearray(BLOCK)
        for i in range(1 - parity, N, 2):
            assert files.pread_into(fd, memoryview(buf), i * BLOCK) == BLOCK and buf == block(i), i
            assert files.pread(fd, BLOCK, i * BLOCK) == block(i), i
    except BaseException as e:
        errors.append(repr(e))
for phase in (writer, reader):
    ts = [threading.Thread(target=phase, args=(p,)) for p in (0, 1)]
    for t in ts: t.start()
    for t in ts: t.join()
out["thread_errors"] = errors
out["past_end"] = len(files.pread(fd, BLOCK, N * BLOCK + 10))
out["tail"] = len(files.pread(fd, BLOCK * 2, (N - 1) * BLOCK))
os.close(fd)

# A durable rename replaces its target, as on Linux.
for name, text in (("a.partial", b"new"), ("a", b"old")):
    with open("W:\\" + name, "wb") as f:
        f.write(text)
files.rename("W:\\a.partial", "W:\\a")
files.fsync_dir("W:\\")
out["renamed"] = open("W:\\a", "rb").read().decode()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def primitives(winpy: WinPython) -> dict[str, object]:
    r = winpy.script("primitives.py", PRIMITIVES)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    result: dict[str, object] = json.loads(r.stdout.decode().strip().splitlines()[-1])
    return result


def test_runs_the_windows_code_path(primitives: dict[str, object]) -> None:
    assert primitives["platform"] == "win32" and primitives["windows"] is True
    assert primitives["binary_flag"] == 0x8000  # O_BINARY exists there and is what open_fd adds


def test_bytes_stay_as_written_in_binary_mode(primitives: dict[str, object], winpy: WinPython) -> None:
    data = b"a\nb\x1ac\r\n"
    assert primitives["wrote"] == 7
    assert primitives["pread"] == data.hex() and primitives["read"] == data.hex()
    assert (winpy.work / "bin.dat").read_bytes() == data
    # What the module prevents: a plain os.open is text mode, stores \r\n and reads stop at 0x1A.
    assert (winpy.work / "text.dat").read_bytes() == b"a\r\nb\x1ac\r\r\n"
    assert bytes.fromhex(str(primitives["text_read"])) == b"a\nb"


def test_positional_io_from_two_threads(primitives: dict[str, object], winpy: WinPython) -> None:
    assert primitives["thread_errors"] == []
    expect = b"".join(bytes([i % 251]) * 4096 for i in range(256))
    assert (winpy.work / "threads.dat").read_bytes() == expect
    assert primitives["past_end"] == 0 and primitives["tail"] == 4096  # short only at the end, as pread


def test_durable_rename_replaces(primitives: dict[str, object], winpy: WinPython) -> None:
    assert primitives["renamed"] == "new"
    assert not (winpy.work / "a.partial").exists()


LOCK = r"""
import json, os, subprocess, sys
from core.engine.repo import Repository, LOCK_NAME
from core.errors import LockedError
os.makedirs("W:\\lockfolder", exist_ok=True)
child = [sys.executable, "-c", "import sys\nfrom core.engine.repo import Repository\nfrom core.errors import Error\n"
         "try:\n    with Repository(sys.argv[1]).lock():\n        print('locked'); sys.stdout.flush(); sys.stdin.read()\n"
         "except Error as e:\n    print(type(e).__name__, e.exit_code)\n", "W:\\lockfolder"]
out = {}
with Repository("W:\\lockfolder").lock():
    out["held"] = os.path.exists("W:\\lockfolder\\" + LOCK_NAME)
    out["second"] = subprocess.run(child, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()
out["released"] = not os.path.exists("W:\\lockfolder\\" + LOCK_NAME)
# A holder killed while holding it (TerminateProcess): its lock is stale, the next writer takes it over.
p = subprocess.Popen(child, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
out["killed_holder"] = p.stdout.readline().strip()
p.kill()
p.wait()
out["left_behind"] = os.path.exists("W:\\lockfolder\\" + LOCK_NAME)
from core.platform.process import pid_alive
out["holder_alive"] = pid_alive((Repository("W:\\lockfolder").holder() or {}).get("pid"))
out["me_alive"] = pid_alive(os.getpid())
with Repository("W:\\lockfolder").lock():
    out["taken_over"] = True
print(json.dumps(out))
"""


def test_folder_lock_between_windows_processes(winpy: WinPython) -> None:
    r = winpy.script("lock.py", LOCK)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["held"] is True
    assert out["second"] == "LockedError 8"  # a live holder (OpenProcess says so) is never broken
    assert out["released"] is True
    assert out["killed_holder"] == "locked" and out["left_behind"] is True
    assert out["holder_alive"] is False and out["me_alive"] is True  # OpenProcess + GetExitCodeProcess
    assert out["taken_over"] is True  # a dead holder's lock is stale (and os.kill never ran on Windows)


WINPE_RAM = r"""
import json, os, subprocess, sys, winreg
from core.platform.ramfs import ram_filesystem
KEY = r"SYSTEM\CurrentControlSet\Control\MiniNT"
# C: is the system drive under Wine, as X: (WinPE's RAM disk) is on WinPE; W: is another drive.
out = {"installed": ram_filesystem("C:\\bk")}  # an installed Windows' system drive is a disk
winreg.CreateKey(winreg.HKEY_LOCAL_MACHINE, KEY).Close()  # what makes this Windows a WinPE
try:
    out["winpe"] = ram_filesystem("C:\\bk")
    out["other_drive"] = ram_filesystem("W:\\bk")
    r = subprocess.run([sys.executable, "-m", "rescue", "backup", "W:\\primitives.py", "C:\\bk"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    out["cli"] = [r.returncode, r.stderr.strip()]
finally:
    winreg.DeleteKey(winreg.HKEY_LOCAL_MACHINE, KEY)
out["after"] = ram_filesystem("C:\\bk")
out["made"] = os.path.exists("C:\\bk")
print(json.dumps(out))
"""


def test_winpe_ram_disk_is_a_ram_folder(winpy: WinPython, primitives: dict[str, object]) -> None:
    """WinPE runs from a RAM disk (X:) that Windows reports as an ordinary fixed drive: a backup folder
    on WinPE's system drive is refused as on the Linux media's tmpfs (exit 7), one on another drive is not."""
    # (the source given, W:\\primitives.py, is the `primitives` fixture's script: the refusal comes first)
    r = winpy.script("winpe_ram.py", WINPE_RAM)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["installed"] is None and out["after"] is None
    assert out["winpe"] == "the RAM disk C: WinPE runs from" and out["other_drive"] is None
    code, stderr = out["cli"]
    assert code == 7 and "is in RAM (the RAM disk C: WinPE runs from)" in stderr, stderr
    assert out["made"] is False


def _check(r: subprocess.CompletedProcess[bytes], what: str) -> str:
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, f"{what} under Wine: exit {r.returncode}: {stderr[-3000:]}"
    assert "Traceback" not in stderr
    return r.stdout.decode(errors="replace")


def test_images_made_on_windows_restore_on_linux_and_back(winpy: WinPython) -> None:
    work = winpy.work
    src = small_disk(work / "src.img")
    (work / "key.txt").write_text(PASSWORD + "\n")
    size = src.stat().st_size

    # Windows: an encrypted, split backup, its verify and a restore into a new file.
    _check(winpy.rescue("backup", "W:\\src.img", "W:\\winbk", "--password-file", "W:\\key.txt", "--split", "8M",
                        "--json"), "backup")
    assert len(list((work / "winbk").glob("*.v*"))) > 1  # split into several volumes
    assert "OK" in _check(winpy.rescue("verify", "W:\\winbk", "--password-file", "W:\\key.txt"), "verify")
    with open(work / "win-restored.img", "wb") as f:
        f.truncate(size)
    _check(winpy.rescue("restore", "W:\\winbk", "W:\\win-restored.img", "--yes",
                        env={"RESCUE_PASSWORD": PASSWORD}), "restore")
    assert sha(work / "win-restored.img") == sha(src)

    # Linux reads what Windows wrote.
    r = run_rescue("verify", str(work / "winbk"), "--password-file", str(work / "key.txt"))
    assert r.returncode == 0, r.stderr
    with open(work / "linux-from-win.img", "wb") as f:
        f.truncate(size)
    r = run_rescue("restore", str(work / "winbk"), str(work / "linux-from-win.img"), "--yes",
                   env={"RESCUE_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    assert sha(work / "linux-from-win.img") == sha(src)

    # And the other way round: Linux backs up, Windows verifies and restores.
    r = run_rescue("backup", str(src), str(work / "linuxbk"), "--password-file", str(work / "key.txt"),
                   "--split", "8M")
    assert r.returncode == 0, r.stderr
    assert "OK" in _check(winpy.rescue("verify", "W:\\linuxbk", "--password-file", "W:\\key.txt"), "verify")
    with open(work / "win-from-linux.img", "wb") as f:
        f.truncate(size)
    _check(winpy.rescue("restore", "W:\\linuxbk", "W:\\win-from-linux.img", "--yes",
                        env={"RESCUE_PASSWORD": PASSWORD}), "restore")
    assert sha(work / "win-from-linux.img") == sha(src)
    shutil.rmtree(work / "linuxbk")

    # A chain on Windows: an incremental of the changed disk, merged there (a commit rename over the
    # folder, the old images deleted), then restored by the Linux CLI.
    with open(src, "r+b") as f:
        f.seek(60 << 20)
        f.write(bytes(range(256)) * 4096)
    _check(winpy.rescue("backup", "W:\\src.img", "W:\\winbk", "--incremental", "--password-file", "W:\\key.txt"),
           "incremental backup")
    _check(winpy.rescue("merge", "W:\\winbk", "--password-file", "W:\\key.txt"), "merge")
    r = run_rescue("list", str(work / "winbk"), "--json")
    assert r.returncode == 0, r.stderr
    assert [(i["kind"], i["complete"]) for i in json.loads(r.stdout)] == [("full", True)]
    r = run_rescue("restore", str(work / "winbk"), str(work / "linux-from-win.img"), "--yes",
                   env={"RESCUE_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    assert sha(work / "linux-from-win.img") == sha(src)


REDIRECTED = r"""
import json, subprocess, sys
env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONUTF8"}  # the default code page
out = {}
# A prompt with stdin from NUL (a character device: isatty says yes) must fail at once, not wait.
with open("NUL", "rb") as nul:
    r = subprocess.run([sys.executable, "-m", "rescue", "restore", "W:\\redir", "W:\\redir-target.img"],
                       stdin=nul, capture_output=True, env=env, timeout=120)
out["restore"] = [r.returncode, r.stderr.decode("utf-8", "replace")]
# A listing into a pipe: its tree lines in UTF-8, not a failure in cp1252.
r = subprocess.run([sys.executable, "-m", "rescue", "list", "W:\\redir"], stdin=subprocess.DEVNULL,
                   capture_output=True, env=env, timeout=120)
out["list"] = [r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")]
print(json.dumps(out))
"""


def test_prompts_and_output_when_redirected_on_windows(winpy: WinPython) -> None:
    """Windows' NUL is a character device (``isatty`` says yes): the confirmation must not wait on a
    console nobody reads; a listing into a pipe is UTF-8 (cp1252 has no tree lines)."""
    work = winpy.work
    src = small_disk(work / "redir-src.img")
    for extra in ([], ["--incremental"]):  # a chain: `rescue list` draws its tree lines
        r = run_rescue("backup", str(src), str(work / "redir"), *extra)
        assert r.returncode == 0, r.stderr
    with open(work / "redir-target.img", "wb") as f:
        f.truncate(src.stat().st_size)
    before = sha(work / "redir-target.img")
    out = json.loads(_check(winpy.script("redirected.py", REDIRECTED), "redirected").strip().splitlines()[-1])
    code, err = out["restore"]
    assert code == 3 and "without confirmation" in err and "Traceback" not in err, err
    assert sha(work / "redir-target.img") == before
    code, listing, err = out["list"]
    assert code == 0 and "Traceback" not in err, err
    assert "└ " in listing, listing
