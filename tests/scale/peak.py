"""Measure one command's own peak memory (and wall time, CPU): the launcher the scale tests and bench/ share.

Why not ``os.wait4`` on a child of the measuring process: Linux keeps a process's peak RSS across exec
(exec records the old address space's high-water mark), and a forked or vforked child starts with
its parent's pages, so every child of a 128 MiB Python process reports at least ~128 MiB, ``dd``
included. The command is therefore started by GNU time (``/usr/bin/time``, a small C program), whose
own peak is ~1 MiB, and ``%M`` is its child's ``ru_maxrss``: the command's own peak, plus at most
time's ~1 MiB when the command is smaller than that. Checked in tests/scale/test_peak.py against a
Python process that allocates 200 MiB and ``dd bs=4M`` (a few MiB), run from a process holding 150 MiB.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

TIME = "/usr/bin/time"  # Debian package "time" (scripts/setup.sh)


def wrap(argv: list[str], report: str) -> list[str]:
    """``argv`` started by GNU time, which writes the child's peak RSS (KiB) as ``report``'s last line."""
    return [TIME, "-q", "-f", "%M", "-o", report, *argv]


def read_peak(report: str) -> int:
    """The peak RSS in bytes written by a `wrap`ped command (time prepends a line when the command failed)."""
    with open(report) as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    if not lines or not lines[-1].strip().isdigit():
        raise RuntimeError(f"{TIME} wrote no peak RSS to {report}: {lines}")
    return int(lines[-1]) * 1024


@dataclass
class Measured:
    argv: list[str]
    code: int
    wall: float  # seconds, from start to exit
    cpu: float  # user + system seconds of the command and its children
    peak_rss: int  # bytes, the command's own (see the module docstring)
    stdout: str
    stderr: str


def measure(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> Measured:
    """Run ``argv`` to completion as a fresh process (stdin empty) and measure it."""
    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        report = os.path.join(tmp, "peak")
        with open(os.path.join(tmp, "out"), "w+") as out, open(os.path.join(tmp, "err"), "w+") as err:
            started = time.monotonic()
            p = subprocess.Popen(wrap(argv, report), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=env, cwd=cwd)
            # wait4 on time itself: its CPU figures include the command it waited for (its own are
            # microseconds); its ru_maxrss is useless here (inherited from us, see above).
            _, status, usage = os.wait4(p.pid, 0)
            wall = time.monotonic() - started
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            return Measured(argv, p.returncode, wall, usage.ru_utime + usage.ru_stime, read_peak(report),
                            out.read(), err.read())
