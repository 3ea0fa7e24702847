"""Helpers of the crash/interrupt/exhaustion tests: folder snapshots, image states, the CLI as a process.

A backup folder's state is judged only from its files, the way the next `rescue` run will see it:
which image ids have files, which have a manifest, what `rescue list --json` says, and the SHA-256 of
every file of the images that must survive untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.images import run_rescue, small_disk

ROOT = Path(__file__).resolve().parents[2]
LOCK = "rescue.lock"
_NAME_RE = re.compile(r"^(\d{8}-\d{6}-[0-9a-f]{6})\.(manifest|v\d{4})(\.partial)?$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def image_files(folder: Path, image_id: str) -> list[str]:
    """Every file of one image, final or ``.partial``, sorted."""
    return sorted(n for n in os.listdir(folder) if (m := _NAME_RE.match(n)) and m.group(1) == image_id)


def ids_in(folder: Path) -> set[str]:
    """Image ids that own at least one file in ``folder`` (complete or not)."""
    return {m.group(1) for n in os.listdir(folder) if (m := _NAME_RE.match(n))}


def snapshot(folder: Path, ids: set[str] | list[str]) -> dict[str, str]:
    """name -> sha256 of every file of the given images (what must stay byte-identical)."""
    out: dict[str, str] = {}
    for image_id in ids:
        for name in image_files(folder, image_id):
            out[name] = sha256_file(folder / name)
    return out


def folder_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry of the folder with size, mtime (ns) and content digest: proof that nothing changed."""
    out: dict[str, tuple[int, int, str]] = {}
    for name in sorted(os.listdir(folder)):
        st = os.stat(folder / name)
        out[name] = (st.st_size, st.st_mtime_ns, sha256_file(folder / name))
    return out


def rescue_env() -> dict[str, str]:
    """The environment `tests.images.run_rescue` gives the CLI, for processes we start ourselves."""
    e = dict(os.environ)
    e.pop("RESCUE_PASSWORD", None)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def start_rescue(*args: str) -> subprocess.Popen[str]:
    """The CLI as a background process (to be killed or interrupted by the test)."""
    return subprocess.Popen([sys.executable, "-m", "rescue", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=rescue_env(), cwd=ROOT)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str] | None = None,
               interval: float = 0.002) -> None:
    """Poll ``pred``; fail naming ``what`` on timeout or when ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended (exit {proc.returncode}) before {what}: {err.strip()[-500:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def has_open(pid: int, path: Path) -> bool:
    """True once process ``pid`` holds ``path`` open."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def has_open_file_under(pid: int, folder: Path) -> bool:
    """True once process ``pid`` holds a file of ``folder`` open (it got past start-up into the job)."""
    prefix = str(folder) + os.sep
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                return True
        except OSError:
            continue
    return False


def _io_counter(pid: int, name: str) -> int:
    """One counter of /proc/PID/io; -1 once the process is gone."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return -1
    return -1


def written_bytes(pid: int) -> int:
    """Bytes the process has passed to write()/pwrite() so far (wchar); -1 once it is gone."""
    return _io_counter(pid, "wchar")


def read_bytes(pid: int) -> int:
    """Bytes the process has got from read()/pread() so far (rchar); -1 once it is gone."""
    return _io_counter(pid, "rchar")


def list_json(folder: Path) -> dict[str, dict[str, object]]:
    """`rescue list --json` as {id: entry}."""
    r = run_rescue("list", str(folder), "--json")
    assert r.returncode == 0, r.stderr
    return {e["id"]: e for e in json.loads(r.stdout)}


def one_error_line(stderr: str) -> str:
    """The single `rescue: error:` line of a failed run (no traceback, nothing else on stderr)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rescue: error: "), stderr
    return lines[0]


def dense_disk(path: Path, seed: int = 5) -> Path:
    """`small_disk` with its raw partition 2 filled (half random, half text, per MiB): 64 MiB of data.

    A backup of it has 16 chunks and, with ``--split 8M``, 4 volumes, so that the data phase (and its
    volume commits) takes a good share of the run and time-based kills land in it."""
    small_disk(path)
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True, capture_output=True, text=True).stdout
    p2 = json.loads(out)["partitiontable"]["partitions"][1]
    rnd = random.Random(seed)
    with open(path, "r+b") as f:
        start, size = p2["start"] * 512, p2["size"] * 512
        for i in range(0, size, 1 << 20):
            f.seek(start + i)
            text = ((b"text data %08d\n" % i) * 65536)[:1 << 20]
            f.write(rnd.randbytes(1 << 20) if rnd.random() < 0.5 else text)
    return path
