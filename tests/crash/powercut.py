"""Run one engine job over tests/crash/powercut_fuse.py and cut the power at a chosen operation (R-12).

`run_cut` mounts the power-cut filesystem over a folder, runs the job in a forked child (the engine
in-process: no CLI start-up per run), and when the filesystem reports the cut kills the child with
SIGKILL; after unmounting, the folder the next boot would see is returned ("power on").
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.crash.fuseshim import need_fuse, unmount

SHIM = Path(__file__).with_name("powercut_fuse.py")
CHILD_TIMEOUT = 120  # a job here takes a few seconds; a hang is a failure, not a wait


@dataclass
class CutRun:
    output: Path  # the folder as it is after power-on (or after a clean unmount without a cut)
    ops: int  # mutating operations the job made before the cut (all of them without one)
    cut: bool
    exit_code: int  # the child's: 0 finished, 1 raised, -9 killed at the cut
    error: str  # what the job raised, if it did
    stats: dict[str, object]


def _child(job: Callable[[Path], None], mnt: Path, err_path: Path) -> None:
    """In the forked child: run the job, report what it raised, never return into pytest."""
    code = 0
    try:
        job(mnt)
    except BaseException as e:  # the child reports everything; the parent decides what is allowed
        code = 1
        try:
            err_path.write_text(f"{type(e).__name__}: {e}")
        except OSError:
            pass
    os._exit(code)


def survival(k: int, n: int, seed: int) -> str:
    """What survives the k-th of n cuts (powercut_fuse.py's SURVIVE): the last cut, and every fourth
    before it, keeps only the newest pending writes; half the cuts a random subset; the rest nothing."""
    j = n - 1 - k
    return "latest" if j % 4 == 0 else "none" if j % 4 == 2 else f"random:{seed + k}"


def run_cut(input_dir: Path, work: Path, job: Callable[[Path], None], cut: int, survive: str) -> CutRun:
    """Mount INPUT, run ``job(mountpoint)``, cut the power before operation ``cut`` (-1: never)."""
    work.mkdir(parents=True)
    mnt, output, stats, err = work / "mnt", work / "out", work / "stats.json", work / "child.err"
    mnt.mkdir()
    fs = subprocess.Popen([sys.executable, str(SHIM), str(input_dir), str(mnt), str(work / "fs"), str(output),
                           str(stats), str(cut), survive], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    child = -1
    status = 0
    try:
        assert fs.stdout is not None
        line = fs.stdout.readline()
        if line.strip() != "ready":
            fs.wait(timeout=10)
            err_text = fs.stderr.read() if fs.stderr else line
            pytest.skip(f"the power-cut filesystem cannot mount here: {err_text.strip()[-300:]}")
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            _child(job, mnt, err)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                break
            ready, _, _ = select.select([fs.stdout], [], [], 0.005)
            if ready and fs.stdout.readline().strip() == "cut":
                os.kill(child, signal.SIGKILL)  # the machine is off: the job gets no further
                os.waitpid(child, 0)
                status = -signal.SIGKILL
                break
            assert time.monotonic() < deadline, f"the job hung (cut at {cut})"
    finally:
        if child > 0:
            try:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        unmount(mnt, fs, 30)
    assert fs.returncode == 0, f"power-cut filesystem failed: {fs.stderr.read() if fs.stderr else ''}"
    info = json.loads(stats.read_text())
    code = status if status < 0 else os.waitstatus_to_exitcode(status)
    return CutRun(output, int(info["ops"]), bool(info["cut"]), code,
                  err.read_text() if err.exists() else "", info)
