"""Growing and shrinking NTFS on the target with ntfsresize (Debian's ntfs-3g), never on the source.

Growing: ntfsresize on a loop device over the new, larger partition. Shrinking: the partition's data
was restored into the target partition plus a spill file (see `core.io.spillfs`); ntfsresize, run on a
loop device over the FUSE file that joins them, moves the clusters beyond the new end inside it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time

from ..errors import TargetWriteError
from ..platform import ErrorFor, attempt, loop_device, run

# ntfsresize on a multi-GB volume moves data at disk speed; an hour covers the slowest USB 2 disks.
RESIZE_TIMEOUT = 3600


def _error(target: str) -> ErrorFor:
    return lambda detail: TargetWriteError(target=target, detail=detail)


def grow_ntfs(target: str, start: int, new_size: int) -> str:
    """Grow the NTFS volume at ``start`` to fill ``new_size`` bytes."""
    with loop_device(target, offset=start, size=new_size, error=_error(target)) as dev:
        return run(["ntfsresize", "--force", "--size", str(new_size), dev], f"growing NTFS at byte {start}",
                   error=_error(target), input="y\n", timeout=RESIZE_TIMEOUT)


def shrink_ntfs(target: str, start: int, old_size: int, new_size: int, spill: str) -> str:
    """Shrink the NTFS volume whose first ``new_size`` bytes are at ``start`` and the rest in ``spill``."""
    mnt = tempfile.mkdtemp(prefix="rescue-spill-")
    server = subprocess.Popen([sys.executable, "-m", "core.io.spillfs", mnt, target, str(start), str(new_size), spill,
                               str(old_size)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    volume = os.path.join(mnt, "volume")
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(volume):
            if server.poll() is not None or time.monotonic() > deadline:
                err = (server.stderr.read().decode() if server.stderr else "").strip().splitlines()[-1:]
                raise TargetWriteError(target=target, detail=f"could not start the shrink helper: {err}")
            time.sleep(0.05)
        with loop_device(volume, error=_error(target)) as dev:
            out = run(["ntfsresize", "--force", "--size", str(new_size), dev],
                      f"shrinking NTFS at byte {start} to {new_size} bytes", error=_error(target),
                      input="y\n", timeout=RESIZE_TIMEOUT)
        return out
    finally:
        attempt(["fusermount3", "-u", mnt])
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        with contextlib.suppress(OSError):
            os.rmdir(mnt)
