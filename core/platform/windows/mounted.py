"""The files of a partition on Windows: the volume Windows mounted on it, reached by its path.

On Linux the repair mounts a Windows partition itself (ntfs-3g) and works on that folder. Windows
(WinPE) mounts every NTFS partition it finds on its own, so here the same folder-based code is handed
the root of that volume instead: its first drive letter or mount folder (``E:\\``), else the volume's
GUID path (``\\\\?\\Volume{GUID}\\``, which Windows' file APIs take as a folder without any letter).

The volume is the one whose only extent (IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS) is exactly the
partition's bytes on disk N; a volume spread over several extents (a spanned dynamic disk) is not a
partition's. Right after a restore wrote a new partition table, Windows creates the new volumes in
the background, so a volume not found yet is looked for again for a while before the partition is
called unmounted. When something was written, every cached byte of the volume is flushed before the
caller reports success: FlushFileBuffers on the volume's own handle flushes all its files and its
metadata (Windows documents it so; it needs administrator rights, which WinPE has).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from ...errors import TargetWriteError, UnsupportedError
from . import c_win as c
from . import query, refuse, volumes
from .seam import Win32, Win32Error, current

# Windows mounts a partition it has just been told about (IOCTL_DISK_UPDATE_PROPERTIES) within about
# a second; 20 s covers a slow USB disk without making an unmounted partition hang the command.
VOLUME_WAIT = 20.0
_POLL = 0.25


def volume_of(api: Win32, number: int, offset: int, size: int) -> volumes.Volume | None:
    """The volume Windows mounted on the ``size`` bytes at ``offset`` of disk ``number``, if any."""
    for v in volumes.all_volumes(api):
        if v.extents == [(number, offset, size)]:
            return v
    return None


def root_of(v: volumes.Volume) -> str:
    """The folder the volume's files are under: a letter or mount folder, else its GUID path."""
    return v.paths[0] if v.paths else v.name


def find_volume(api: Win32, number: int, offset: int, size: int, *, wait: float = VOLUME_WAIT,
                sleep: Callable[[float], None] = time.sleep) -> volumes.Volume | None:
    """`volume_of`, asked again every quarter second for up to ``wait`` seconds while there is none."""
    deadline = time.monotonic() + wait
    while True:
        v = volume_of(api, number, offset, size)
        if v is not None or time.monotonic() >= deadline:
            return v
        sleep(_POLL)


def flush_volume(api: Win32, v: volumes.Volume) -> None:
    """FlushFileBuffers on the volume itself: everything written to any file on it reaches the disk."""
    handle = api.create_file(v.device, c.GENERIC_READ | c.GENERIC_WRITE, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
    try:
        api.flush_file_buffers(handle)
    finally:
        api.close_handle(handle)


@contextlib.contextmanager
def mounted_partition(disk: str, offset: int, size: int, partition: int, *, readonly: bool,
                      api: Win32 | None = None, wait: float = VOLUME_WAIT) -> Iterator[str]:
    """The root folder of the volume on partition ``partition`` of ``disk`` (``\\\\.\\PhysicalDriveN``).

    For writing (``readonly`` False) the disk is first refused as a restore target would be when it is
    the running Windows', the medium WinPE started from or holds a page file in use
    (`core.platform.windows.refuse`); its volumes stay mounted, since the files are written through them.
    After the ``with`` block the volume is flushed; a flush that fails after a block that succeeded is
    `TargetWriteError`.
    """
    api = api or current()
    number = query.disk_number_of(disk)
    if number is None:
        raise UnsupportedError(detail=f"{disk} is not a Windows disk (\\\\.\\PhysicalDriveN): the files of a "
                                      "partition in a disk image file cannot be reached on Windows")
    if not readonly:
        refuse.check_target(api, disk, number, sources=[], image_paths=[])
    v = find_volume(api, number, offset, size, wait=wait)
    if v is None:
        raise UnsupportedError(detail=f"partition {partition} of {disk} has no volume Windows mounted (a disk "
                                      "Windows keeps offline: `diskpart` then `select disk`, `online disk`; or a "
                                      "filesystem Windows does not read)")
    body_ok = False
    try:
        yield root_of(v)
        body_ok = True
    finally:
        if not readonly:
            try:
                flush_volume(api, v)
            except Win32Error as e:
                if body_ok:
                    raise TargetWriteError(target=f"{disk} partition {partition} ({v.label})",
                                           detail=f"flushing the volume failed (Windows error {e.code}): what "
                                                  "was written may not be on the disk yet") from e

