"""Setting up and tearing down everything above the FUSE raw files: loop devices, ntfs-3g, fusefat.

`setup` runs while the FUSE server is already serving (the drivers read through it as they mount).
`teardown` works from the mount table and the loop devices' backing files alone, so it cleans up a live
mount, a half-built one (an error during setup) and a stale one whose server died, and running it
twice is harmless: unmount the drivers (deepest first), detach the loop devices, unmount the FUSE
filesystem, wait for its server to exit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time

from core import platform
from core.errors import FormatError, UsageError

from . import system
from .layout import Entry

log = logging.getLogger("rescue.mount")

FSTYPE = "fuse.rescue"  # our FUSE filesystem in /proc/self/mountinfo (subtype=rescue)
# Kernel readahead on our FUSE files. The default 128 KiB makes every read of the loop devices and
# fusefat reach the server as 128 KiB requests, each a Python round trip; at 1 MiB (the largest request
# FUSE sends here, 256 pages) a large file costs an eighth of them (bench/browse.py). More only read further past
# what small files need.
READAHEAD_KIB = 1024
# How long `rescue umount` waits for the server process to exit after its filesystem is gone.
SERVER_EXIT_WAIT = 20.0


def drivers() -> dict[str, str | None]:
    """Which browsing driver each filesystem kind has on this machine (None: show the raw file)."""
    return {"ntfs": "ntfs-3g" if shutil.which("ntfs-3g") else None,
            "fat": "fusefat" if shutil.which("fusefat") else None}


def browsable(items: list[Entry], only: set[int] | None = None) -> set[str]:
    """Names of the partitions we can mount a filesystem driver on (restricted to ``only``)."""
    have = drivers()
    return {e.name for e in items
            if e.number > 0 and have.get(e.kind) and (only is None or e.number in only)}


def setup(mountpoint: str, items: list[Entry], browse: set[str]) -> None:
    """Mount each browsable partition's filesystem, read-only, at MOUNTPOINT/pN."""
    # Before the drivers open the raw files: a file's readahead size is taken when it is opened.
    if browse and not system.set_readahead(mountpoint, READAHEAD_KIB):
        log.info("could not set the readahead of %s; reads stay at the kernel's default size", mountpoint)
    for e in items:
        if e.name not in browse:
            continue
        raw = os.path.join(mountpoint, ".raw", e.name)
        target = os.path.join(mountpoint, e.name)
        what = f"partition {e.number} ({e.fs})"
        if e.kind == "ntfs":
            # ntfs-3g wants a block device: a read-only loop device on the FUSE-served file.
            dev = system.loop_attach(raw)
            _start_driver(["ntfs-3g", "-o", "ro", dev, target], target, what)
        else:
            # fusefat reads an image file directly; ro: it must never try to write to it.
            _start_driver(["fusefat", "-o", "ro,allow_other", raw, target], target, what)
        log.info("%s mounted at %s", what, target)


def _start_driver(cmd: list[str], target: str, what: str) -> None:
    """Start a FUSE driver (it daemonizes itself once mounted) and wait until the mount is there."""
    with tempfile.NamedTemporaryFile(prefix="rescue-mount-", suffix=".log") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            proc.wait(timeout=system.MOUNT_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise FormatError(what=what, detail=f"{cmd[0]} did not finish mounting within "
                                                f"{system.MOUNT_WAIT:.0f} s") from None
        if proc.returncode != 0:
            raise FormatError(what=what, detail=f"{cmd[0]} cannot mount it: {system._tail(out.name)}")
        system.wait_mounted(target, None, what, out.name)


def canonical(mountpoint: str) -> str:
    """Absolute, symlink-free path of a mountpoint, without touching the mountpoint itself (a dead
    FUSE mount answers every access with ENOTCONN)."""
    path = os.path.abspath(mountpoint)
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def server_pid(mountpoint: str) -> int | None:
    """The pid serving a live mount (from MOUNTPOINT/.raw/mount.json), or None."""
    try:
        with open(os.path.join(mountpoint, ".raw", "mount.json"), "rb") as f:
            pid = json.loads(f.read(65536)).get("pid")  # a few hundred bytes; the cap guards a wrong file
    except (OSError, ValueError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def teardown(mountpoint: str, lazy: bool = False) -> bool:
    """Unmount the whole stack at ``mountpoint``; False when there was nothing to do.

    ``lazy``: a busy mount is detached from the tree anyway (it goes away when its last user leaves)
    instead of failing with BusyError; used by Ctrl-C/SIGTERM and for stale mounts.
    """
    mp = canonical(mountpoint)
    table = platform.mounts()
    root = [m for m in table if m.mount_point == mp]
    if root and root[-1].fs_type != FSTYPE:
        raise UsageError(detail=f"{mp} is not a rescue mount ({root[-1].fs_type} {root[-1].source} is "
                                "mounted there); not touching it")
    loops = platform.loops_backed_by(os.path.join(mp, ".raw"))
    if not root and not loops:
        return False
    pid = server_pid(mp) if root else None
    stale = bool(root) and not _alive(mp)
    for m in system.mounts_under(mp):
        if m.mount_point != mp:
            system.unmount(m.mount_point, lazy=lazy or stale)
    system.loop_detach(loops, wait=not (lazy or stale))
    if root:
        system.unmount(mp, lazy=lazy or stale)
    if pid is not None and pid != os.getpid():
        deadline = time.monotonic() + SERVER_EXIT_WAIT
        while platform.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    log.info("%s unmounted", mp)
    return True


def _alive(mp: str) -> bool:
    try:
        os.stat(os.path.join(mp, ".raw"))
    except OSError:
        return False  # ENOTCONN: the server is gone
    return True
