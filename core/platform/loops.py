"""Loop devices: a file, or a byte range of a file or disk, as a block device (``losetup``).

Rescue systems have no partition nodes for loop devices, so a partition is attached on its own
(``-o OFFSET --sizelimit SIZE``). The retry policy lives here only: attaching races with other
processes for the same free device (the loser gets EBUSY and retries on the next one), and detaching
fails briefly while udev still probes a device that was just written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Iterator

from ..errors import UnsupportedError
from .tools import ErrorFor, attempt

ATTACH_TRIES = 5
DETACH_TRIES = 10
# How long a detached device may stay in use by its last user (ntfs-3g flushing on its way out)
# before we call it busy; the kernel frees it (autoclear) as soon as that user closes it.
DETACH_WAIT = 20.0


def attach_loop(path: str, *, offset: int = 0, size: int | None = None, readonly: bool = False,
                sector_size: int | None = None, error: ErrorFor) -> str:
    """Attach ``size`` bytes (None: all) from ``offset`` of ``path`` to a free loop device; its /dev path."""
    cmd = ["losetup", "-f", "--show", "-o", str(offset)]
    if size is not None:
        cmd += ["--sizelimit", str(size)]
    if readonly:
        cmd.append("-r")
    if sector_size is not None:
        cmd += ["--sector-size", str(sector_size)]
    o = attempt([*cmd, path])
    for n in range(1, ATTACH_TRIES):
        if o.ok:
            break
        time.sleep(0.2 * n)
        o = attempt([*cmd, path])
    if not o.ok:
        raise error(f"attaching {path} to a loop device: {o.detail}")
    return o.stdout.strip()


def in_use(dev: str) -> bool:
    """Whether loop device ``dev`` still has a backing file (it is attached)."""
    return _binding(dev) is not None


def _binding(dev: str) -> tuple[str, str] | None:
    """What ``dev`` is attached to now (backing file, offset), or None when it is free."""
    sysfs = f"/sys/block/{os.path.basename(dev)}/loop"
    try:
        with open(f"{sysfs}/backing_file") as f:
            back = f.read().strip()
        with open(f"{sysfs}/offset") as f:
            return back, f.read().strip()
    except OSError:
        return None


def detach_loop(dev: str, *, error: ErrorFor, wait: bool = True) -> None:
    """Detach ``dev``; with ``wait``, also until the kernel has really let it go (bounded).

    ``wait=False`` leaves a device that is still open to the kernel, which frees it when its last
    user closes it (a lazily unmounted filesystem). Only the binding we detached is waited for: once the
    kernel frees the device another process may attach something else to the same name at once, and
    detaching that would pull a disk from under it.
    """
    ours = _binding(dev)
    for n in range(DETACH_TRIES):
        if ours is None or _binding(dev) != ours:
            return  # already free (or freed and taken by someone else: not ours to touch)
        if attempt(["losetup", "-d", dev]).ok:
            break
        time.sleep(0.1 * (n + 1))
    else:
        raise error(f"losetup -d {dev} kept failing; detach it by hand")
    # A successful detach of a device still open only marks it (autoclear): the kernel frees it when its
    # last user (a driver flushing on its way out) closes it.
    deadline = time.monotonic() + DETACH_WAIT
    while wait and _binding(dev) == ours:
        if time.monotonic() > deadline:
            raise error(f"loop device {dev} is still in use")
        time.sleep(0.05)


@contextlib.contextmanager
def loop_device(path: str, *, offset: int = 0, size: int | None = None, readonly: bool = False,
                sector_size: int | None = None, error: ErrorFor) -> Iterator[str]:
    """`attach_loop` for the ``with`` body; always detached afterwards, also on errors."""
    dev = attach_loop(path, offset=offset, size=size, readonly=readonly, sector_size=sector_size, error=error)
    try:
        yield dev
    except BaseException:
        # The body's error is the one to report; a device it left busy is freed when its user exits.
        with contextlib.suppress(Exception):
            detach_loop(dev, error=error, wait=False)
        raise
    detach_loop(dev, error=error)


def loops_backed_by(prefix: str) -> list[str]:
    """Loop devices whose backing file is ``prefix`` or lies below it."""
    try:
        o = attempt(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"])
    except UnsupportedError:
        return []  # no losetup: no loop devices of ours either
    if not o.ok or not o.stdout.strip():
        return []
    prefix = prefix.rstrip("/")
    out: list[str] = []
    for d in json.loads(o.stdout).get("loopdevices", []):
        # The kernel appends " (deleted)" when the file's mount went away under it (a stale mount).
        back = str(d.get("back-file") or "").removesuffix(" (deleted)")
        if back == prefix or back.startswith(prefix + "/"):
            out.append(str(d["name"]))
    return out
