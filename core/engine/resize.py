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
from typing import Iterator

from ..errors import TargetWriteError

# ntfsresize on a multi-GB volume moves data at disk speed; an hour covers the slowest USB 2 disks.
RESIZE_TIMEOUT = 3600


def _run(cmd: list[str], target: str, what: str, input: str | None = None) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=RESIZE_TIMEOUT)
    except FileNotFoundError:
        raise TargetWriteError(target=target, detail=f"{cmd[0]} is missing (Debian package ntfs-3g / util-linux)") \
            from None
    except subprocess.TimeoutExpired:
        raise TargetWriteError(target=target, detail=f"{what}: {cmd[0]} did not finish in time") from None
    if p.returncode != 0:
        last = " ".join((p.stderr or p.stdout).strip().splitlines()[-2:])
        raise TargetWriteError(target=target, detail=f"{what} failed: {last}")
    return p.stdout


@contextlib.contextmanager
def loop_device(path: str, offset: int = 0, size: int | None = None) -> Iterator[str]:
    cmd = ["losetup", "-f", "--show", "-o", str(offset)]
    if size is not None:
        cmd += ["--sizelimit", str(size)]
    dev = _run(cmd + [path], path, "attaching a loop device").strip()
    try:
        yield dev
    finally:
        for _ in range(20):  # a loop device can stay busy for a moment after its last user closed it
            if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def grow_ntfs(target: str, start: int, new_size: int) -> str:
    """Grow the NTFS volume at ``start`` to fill ``new_size`` bytes."""
    with loop_device(target, start, new_size) as dev:
        return _run(["ntfsresize", "--force", "--size", str(new_size), dev], target,
                    f"growing NTFS at byte {start}", input="y\n")


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
        with loop_device(volume) as dev:
            out = _run(["ntfsresize", "--force", "--size", str(new_size), dev], target,
                       f"shrinking NTFS at byte {start} to {new_size} bytes", input="y\n")
        return out
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        with contextlib.suppress(OSError):
            os.rmdir(mnt)
