"""The drive letters Windows has mounted (for the guide to offer as backup places on WinPE): each with
its kind (a fixed or removable disk, a network share mapped with ``net use``), filesystem, label and
free space. Mounting is Windows' job there: a disk Windows did not give a letter is not offered.

Windows' own calls (GetDriveTypeW of each letter, GetVolumeInformationW, GetDiskFreeSpaceExW):
no Linux notion is used, and none of this runs on Linux (an empty list there: the mount table is
`core.platform.mounts`).
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

# GetDriveTypeW's answers for drives that can hold a backup folder (a CD-ROM, 5, and a RAM disk, 6, cannot).
_KINDS = {2: "removable disk", 3: "disk", 4: "network share"}
_READ_ONLY_VOLUME = 0x00080000  # FILE_READ_ONLY_VOLUME in GetVolumeInformationW's flags
_SEM_FAILCRITICALERRORS = 0x0001


@dataclass(frozen=True)
class Drive:
    root: str  # "E:\\"
    kind: str  # "disk", "removable disk", "network share"
    fs: str  # "NTFS", "FAT32", "exFAT", ... ("" when Windows does not say)
    label: str
    free: int  # bytes the user may still write
    read_only: bool


def drives() -> list[Drive]:
    """The lettered drives that are disks or shares, in letter order; empty when not on Windows."""
    if sys.platform == "win32":
        return _windows_drives()
    return []


def filesystem(path: str) -> str:
    """The filesystem Windows names for the volume holding ``path`` ("FAT32", "NTFS"); "" when unknown."""
    if sys.platform == "win32":
        return _windows_filesystem(path)
    return ""


if sys.platform == "win32":  # (sys.platform itself, so that mypy checks this for the platform it checks)
    from ctypes import wintypes

    _k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _ROOM = 261  # MAX_PATH + 1: room for a root, label or filesystem name

    def _volume_information(root: str) -> tuple[str, str, int] | None:
        """(filesystem, label, flags) of a volume root; None when Windows cannot read it (an empty
        card reader slot, a share that went away)."""
        label, fs = ctypes.create_unicode_buffer(_ROOM), ctypes.create_unicode_buffer(_ROOM)
        flags = wintypes.DWORD(0)
        if not _k32.GetVolumeInformationW(root, label, _ROOM, None, None, ctypes.byref(flags), fs, _ROOM):
            return None
        return fs.value, label.value, flags.value

    def _windows_drives() -> list[Drive]:
        # Every letter asked, rather than GetLogicalDriveStringsW's list, which leaves out drives defined
        # outside the mount manager (Wine's mapped drives, a subst'ed letter). A drive without its medium
        # (a card reader) must fail quietly, not ask with a dialog: SEM_FAILCRITICALERRORS.
        old_mode = wintypes.DWORD(0)
        _k32.SetThreadErrorMode(_SEM_FAILCRITICALERRORS, ctypes.byref(old_mode))
        try:
            return [d for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if (d := _drive(letter + ":\\")) is not None]
        finally:
            _k32.SetThreadErrorMode(old_mode, None)

    def _drive(root: str) -> Drive | None:
        kind = _KINDS.get(_k32.GetDriveTypeW(root))
        free = ctypes.c_ulonglong(0)
        # free space is what a drive must tell (an empty card reader slot does not); its filesystem and
        # label only name it (Wine's drives mapped onto host folders have none)
        if kind is None or not _k32.GetDiskFreeSpaceExW(root, ctypes.byref(free), None, None):
            return None
        fs, label, flags = _volume_information(root) or ("", "", 0)
        return Drive(root, kind, fs, label, free.value, bool(flags & _READ_ONLY_VOLUME))

    def _windows_filesystem(path: str) -> str:
        root = ctypes.create_unicode_buffer(32768)
        if not _k32.GetVolumePathNameW(path, root, len(root)):
            return ""
        info = _volume_information(root.value)
        return info[0] if info else ""
