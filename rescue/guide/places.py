"""Where a backup can go: the mounted filesystems that can hold one (a real, writable filesystem, not
in memory), each with its free space, for choosing the backup folder instead of typing it.

On Windows (WinPE) those are the drive letters Windows mounted (`core.platform.letters`: disks, USB
sticks, shares mapped with ``net use``), WinPE's own RAM disk X: left out; mounting is Windows' job there,
and the screen says so (`INTRO`).
"""

from __future__ import annotations

import os
import sys

from core.platform.letters import drives
from core.platform.mounts import mounts
from core.platform.ramfs import ram_filesystem

from .ui import human

# Filesystems on disks that a backup folder can live on (fuseblk: NTFS through ntfs-3g).
DISK_FILESYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "vfat", "exfat", "ntfs", "ntfs3",
                    "fuseblk"}
# System mounts a person never means as a backup place (the ESP under /boot, the rescue system's own).
SYSTEM_PREFIXES = ("/boot", "/proc", "/sys", "/dev", "/run")
# The folder proposed on a chosen filesystem (editable before it is used).
FOLDER_NAME = "rescue-backups"


INTRO = {
    "linux": "Where should the backup go? Mounted disks that can hold one:",
    "win32": "Where should the backup go? The drives Windows mounted (a disk or share without a drive "
             "letter is not listed: give it one, e.g. net use Z: \\\\server\\share, in the shell):",
}


def intro() -> str:
    return INTRO["win32" if sys.platform == "win32" else "linux"]


def places() -> list[tuple[str, str]]:
    """(folder to propose, one line describing the filesystem), most free space first."""
    if sys.platform == "win32":
        return _windows_places()
    found: list[tuple[int, str, str]] = []
    for m in mounts():
        mp = m.mount_point
        if m.fs_type not in DISK_FILESYSTEMS or mp.startswith(SYSTEM_PREFIXES) or ram_filesystem(mp):
            continue
        try:
            st = os.statvfs(mp)
        except OSError:
            continue
        if st.f_flag & os.ST_RDONLY or not os.access(mp, os.W_OK):
            continue
        free = st.f_bavail * st.f_frsize
        fs = "ntfs" if m.fs_type == "fuseblk" else m.fs_type
        found.append((free, os.path.join(mp, FOLDER_NAME), f"{mp}  ({fs} on {m.source}, {human(free)} free)"))
    found.sort(key=lambda f: -f[0])
    return [(folder, text) for _, folder, text in found]


def _windows_places() -> list[tuple[str, str]]:
    found: list[tuple[int, str, str]] = []
    for d in drives():
        if d.read_only or ram_filesystem(d.root):
            continue
        label = f" '{d.label}'" if d.label else ""
        found.append((d.free, d.root + FOLDER_NAME,
                      f"{d.root}  ({d.fs + ' ' if d.fs else ''}{d.kind}{label}, {human(d.free)} free)"))
    found.sort(key=lambda f: -f[0])
    return [(folder, text) for _, folder, text in found]
