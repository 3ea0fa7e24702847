"""Whether a process is alive: the holder of a backup folder's lock, the server of a mount.

A zombie (exited, not yet reaped by its parent) is dead: its locks and its FUSE server are gone, so
treating it as alive would keep a stale lock or wait for a server that will never answer.
"""

from __future__ import annotations

import os


def pid_alive(pid: object) -> bool:
    """True when ``pid`` (any value read from a file) names a running, non-zombie process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a pid beyond the kernel's range
        return False
    except PermissionError:
        pass  # it exists, under another user: still check for a zombie below
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "PID (COMM) STATE ...": COMM may hold spaces and ")", so split after the last ")".
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        # Gone between the two looks, or no /proc at all: then only kill()'s answer is known.
        return not os.path.isdir("/proc/self")
