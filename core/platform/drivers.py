"""A filesystem driver (ntfs-3g) run in the foreground as our child for the length of a ``with`` block.

The driver stays our child (``-o no_detach``), so after unmounting we can wait for it to exit: only
then has it flushed everything to its device and let go of it (a loop device can then be detached).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from typing import IO, Iterator, Sequence

from .mounts import is_mounted, unmount
from .tools import ErrorFor

# ntfs-3g mounts in well under a second; 30 s covers a loaded machine without hanging forever.
MOUNT_TIMEOUT = 30.0
# How long a driver may take to flush and exit once unmounted (ntfs-3g writes its caches back).
EXIT_TIMEOUT = 60.0


def log_tail(log: IO[bytes]) -> str:
    """A driver's last messages from its log file, as one line."""
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 600))  # the driver's last words are enough for a one-line error
    text = log.read().decode(errors="replace").strip()
    return text.replace("\n", " | ") or "no message"


@contextlib.contextmanager
def driver_mounted(cmd: Sequence[str], mountpoint: str, *, error: ErrorFor) -> Iterator[None]:
    """Run ``cmd``, a driver mounting at ``mountpoint`` in the foreground; unmounted and waited for after.

    A driver that exits or does not mount in time is ``error(detail)`` with its last messages. A mount
    still busy at the end is detached lazily, so it never outlives us.
    """
    mnt = os.path.realpath(mountpoint)  # the mount table holds canonical paths
    if is_mounted(mnt):  # the wait below would take the old mount for the new one
        raise error(f"{mnt} is already a mount point")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        body_ok = False
        try:
            deadline = time.monotonic() + MOUNT_TIMEOUT
            while not is_mounted(mnt):
                if proc.poll() is not None:
                    raise error(f"{cmd[0]} exited {proc.returncode} before mounting {mnt}: {log_tail(log)}")
                if time.monotonic() > deadline:
                    raise error(f"{cmd[0]} did not mount {mnt} within {MOUNT_TIMEOUT:.0f} s")
                time.sleep(0.02)
            yield
            body_ok = True
        finally:
            busy = unmount(mnt, lazy=True, tries=10) if proc.poll() is None else ""
            try:
                proc.wait(timeout=EXIT_TIMEOUT)
                late = ""
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                late = f"did not exit within {EXIT_TIMEOUT:.0f} s of unmounting and was killed"
            # What was written through the driver is on its device only once the driver has flushed and
            # exited cleanly: anything else, after a body that succeeded, must not pass as success.
            if body_ok:
                if late:
                    raise error(f"{cmd[0]} on {mnt} {late}; what was written may be incomplete")
                if busy:
                    raise error(f"{mnt} was still in use at the end ({busy}); it was detached lazily and "
                                "what was written may not be flushed yet")
                if proc.returncode != 0:
                    raise error(f"{cmd[0]} on {mnt} exited {proc.returncode} after unmounting: {log_tail(log)}")
