"""The system side of a mount: loop devices, waiting for ntfs-3g/fusefat, unmounting, with our errors.

The plumbing itself (losetup, the mount table, umount) is `core.platform`'s; this module adds what
browsing an image needs on top: read-only loop devices, the wait for a daemonizing driver, and
`BusyError` for a mount or device still in use.
"""

from __future__ import annotations

import os
import subprocess
import time

from core import platform
from core.errors import BusyError, FormatError, UnsupportedError

# How long a freshly started FUSE driver may take to appear in the mount table: ntfs-3g mounts in well
# under a second; the margin covers a loaded machine.
MOUNT_WAIT = 20.0


def mounts_under(path: str) -> list[platform.Mount]:
    """Mounts at ``path`` or below it, deepest (last mounted) first: the order to unmount them."""
    path = path.rstrip("/") or "/"
    found = [m for m in platform.mounts() if m.mount_point == path or m.mount_point.startswith(path + "/")]
    return list(reversed(found))


def wait_mounted(path: str, proc: subprocess.Popen[bytes] | None, what: str, log_path: str | None) -> None:
    """Wait until a FUSE driver we started has mounted ``path``; fail with its message if it exits."""
    deadline = time.monotonic() + MOUNT_WAIT
    while not platform.is_mounted(path):
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            raise FormatError(what=what, detail=f"could not be mounted ({_tail(log_path)})")
        if time.monotonic() > deadline:
            raise FormatError(what=what, detail=f"was not mounted within {MOUNT_WAIT:.0f} s ({_tail(log_path)})")
        time.sleep(0.02)


def _tail(log_path: str | None) -> str:
    if not log_path:
        return "no log"
    try:
        with open(log_path, "rb") as f:
            return platform.log_tail(f)
    except OSError:
        return "no log"


def set_readahead(mountpoint: str, kib: int) -> bool:
    """Set the kernel's readahead for the files of the FUSE filesystem at ``mountpoint`` (its bdi in
    sysfs). Only files opened afterwards use it. False (and nothing changed) when sysfs refuses."""
    st = os.stat(mountpoint)
    try:
        with open(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb", "w") as f:
            f.write(str(kib))
    except OSError:
        return False
    return True


def loop_attach(path: str) -> str:
    """A read-only loop device on ``path``; its /dev path."""
    return platform.attach_loop(path, readonly=True, error=lambda d: UnsupportedError(detail=d))


def loop_detach(devices: list[str], wait: bool = True) -> None:
    """Detach loop devices; a device still open is detached by the kernel once its user closes it, so
    we wait (bounded) until each is really gone (``wait=False``: leave that to the kernel)."""
    for dev in devices:
        platform.detach_loop(dev, wait=wait, error=lambda d: BusyError(detail=d))


def unmount(path: str, lazy: bool = False) -> None:
    """Unmount one mount; BusyError when something still uses it (a shell's cwd, an open file)."""
    why = platform.unmount(path, lazy=lazy)
    if why:
        raise BusyError(detail=f"{path} is busy ({why}): close the programs and shells using it and run "
                               "`rescue umount` again (or `rescue umount --lazy`)")
