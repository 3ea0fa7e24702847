"""The one runner for external tools (ntfs-3g's helpers, losetup, mount, mtools, sfdisk, ...).

Every tool runs with a timeout, stdin closed (a prompt must never hang a rescue) and its output
captured. A failure becomes an exception the caller chooses (`ErrorFor`: restore maps it to
`TargetWriteError`, reading a volume to `SourceError`, ...), with a one-line detail naming the tool and
its last stderr line; a tool that is not installed is `UnsupportedError` whoever asked. Nothing here
lets a `subprocess` exception through: callers never see a traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..errors import UnsupportedError

# Builds the caller's error from a one-line detail ("attaching x: losetup exited 1: ...").
ErrorFor = Callable[[str], Exception]

# Windows' own tools, which run there (WinPE's session controls: `core.platform.winpe`); any other tool
# is a Linux one, refused on Windows by `require`.
WINDOWS_TOOLS = frozenset({"wpeutil"})

# The tools we run (losetup, mtools on a hive, umount, sfdisk) finish in seconds; ten minutes means it
# hangs (a dead FUSE server, a dying disk). Long jobs (ntfsresize) pass their own bound.
TOOL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Outcome:
    """How a tool run went, for callers that retry or accept a failure."""

    ok: bool
    stdout: str
    detail: str  # why it failed, one line: "losetup exited 1: <its last stderr line>"; "" when ok


def _last_line(*texts: bytes) -> str:
    for text in texts:
        lines = [ln.strip() for ln in text.decode(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "no message"


def require(tool: str, why: str) -> None:
    """Stop before anything is written when ``why`` needs ``tool`` and this machine has none.

    WinPE has none of the Linux tools (ntfs-3g, ntfsresize, mtools, losetup, FUSE): a restore that would
    need one after its data is written is refused at its plan, with what to use instead."""
    if sys.platform == "win32":
        raise UnsupportedError(detail=f"{why} needs {tool}, a Linux tool that is not available on Windows: "
                                      f"use the Linux rescue media for this")
    if shutil.which(tool) is None:
        raise UnsupportedError(detail=f"{why} needs {tool}, which is not installed; scripts/setup.sh installs it")


def attempt(cmd: Sequence[str], *, input: bytes | str | None = None, env: Mapping[str, str] | None = None,
            timeout: float | None = TOOL_TIMEOUT, daemon: bool = False) -> Outcome:
    """Run ``cmd`` once; never raises except `UnsupportedError` when the tool is not installed.

    ``daemon``: the tool leaves a process running in the background that may keep its standard output
    and error open (rclone mount --daemon with a log file does): they go to files, not pipes, so its
    end is not taken to be the end of their output."""
    if sys.platform == "win32" and cmd[0] not in WINDOWS_TOOLS:
        require(cmd[0], "this step")
    if shutil.which(cmd[0]) is None:
        raise UnsupportedError(detail=f"{cmd[0]} is not installed; scripts/setup.sh installs it")
    data = input.encode() if isinstance(input, str) else input
    try:
        with contextlib.ExitStack() as files:
            # A daemon's output goes to files (it may hold them open after it forks); anything else's
            # to pipes, with no file created for it.
            sinks = [files.enter_context(tempfile.TemporaryFile()) for _ in range(2)] if daemon else []
            try:
                p = subprocess.run(list(cmd), input=data, stdin=subprocess.DEVNULL if data is None else None,
                                   stdout=sinks[0] if daemon else subprocess.PIPE,
                                   stderr=sinks[1] if daemon else subprocess.PIPE,
                                   env={**os.environ, **env} if env else None, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped it
                return Outcome(False, "", f"{cmd[0]} did not finish within {timeout:g} s")
            for f in sinks:
                f.seek(0)
            stdout, stderr = (sinks[0].read(), sinks[1].read()) if daemon else (p.stdout, p.stderr)
    except OSError as e:  # not runnable (permissions, a broken interpreter line), or no room for its output
        return Outcome(False, "", f"{cmd[0]} cannot be started: {e.strerror or e}")
    out = stdout.decode(errors="replace")
    if p.returncode != 0:
        return Outcome(False, out, f"{cmd[0]} exited {p.returncode}: {_last_line(stderr, stdout)}")
    return Outcome(True, out, "")


def run(cmd: Sequence[str], what: str, *, error: ErrorFor, input: bytes | str | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = TOOL_TIMEOUT) -> str:
    """Run ``cmd`` for ``what`` (a phrase: "attaching a loop device"); its stdout, or ``error(detail)``."""
    o = attempt(cmd, input=input, env=env, timeout=timeout)
    if not o.ok:
        raise error(f"{what}: {o.detail}")
    return o.stdout


def start(cmd: Sequence[str], *, stdin: int | None = None, stdout: int | None = None,
          log: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as a long-running stream tool (udp-sender, udp-receiver, dnsmasq) and return it.

    For tools that stream data through pipes for as long as a job runs, which `run` cannot hold:
    ``stdin``/``stdout`` are file descriptors (or None: /dev/null), stderr goes to ``log`` (or is
    dropped). The caller waits for it, reads its exit status and kills it; a tool that is not
    installed or cannot start is `UnsupportedError`, as with `run`."""
    if sys.platform == "win32":
        require(cmd[0], "this step")
    if shutil.which(cmd[0]) is None:
        raise UnsupportedError(detail=f"{cmd[0]} is not installed; scripts/setup.sh installs it")
    err = open(log, "ab") if log else None
    try:
        return subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL if stdin is None else stdin,
                                stdout=subprocess.DEVNULL if stdout is None else stdout,
                                stderr=err if err is not None else subprocess.DEVNULL)
    except OSError as e:
        raise UnsupportedError(detail=f"{cmd[0]} cannot be started: {e.strerror or e}") from None
    finally:
        if err is not None:
            err.close()
