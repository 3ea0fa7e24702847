"""The volumes of this machine: their names, letters and mount points, the disks under each, and the
lock + dismount of every volume of a target before it is written.

Windows mounts a filesystem on each partition it recognises and refuses raw writes into a mounted
volume that is not locked (ERROR_ACCESS_DENIED). So before a target is written, each of its volumes
is opened, locked (FSCTL_LOCK_VOLUME: fails while any file on it is open, and then the target is
refused) and dismounted (FSCTL_DISMOUNT_VOLUME: its cached state is dropped, so nothing the
filesystem had in memory is written back over the restored data). The locks hold while the volume
handles stay open: `VolumeLocks.release` closes them after the disk is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import TargetRefused
from . import c_win as c
from .seam import Win32, Win32Error

Extent = tuple[int, int, int]  # (disk number, starting offset, length) in bytes

# Room for this many extents at first; a volume spread over more disks (a spanned dynamic volume) is
# asked again with the room Windows says it needs.
_EXTENT_ROOM = 8


@dataclass
class Volume:
    name: str  # \\?\Volume{GUID}\
    paths: list[str] = field(default_factory=list)  # "E:\", "C:\mnt\data\"
    extents: list[Extent] = field(default_factory=list)

    @property
    def device(self) -> str:
        """The name CreateFileW opens the volume itself by (no trailing backslash)."""
        return self.name.rstrip("\\")

    @property
    def label(self) -> str:
        """How messages name it: its first letter or mount point, else its GUID name."""
        return self.paths[0] if self.paths else self.name

    def disks(self) -> set[int]:
        return {d for d, _, _ in self.extents}


def extents(api: Win32, handle: int) -> list[Extent]:
    """IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS of an open volume."""
    room = c.DiskExtentsHeader.size + _EXTENT_ROOM * c.DISK_EXTENT.size
    try:
        reply = api.device_io_control(handle, c.IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, b"", room)
    except Win32Error as e:
        if e.code != c.ERROR_MORE_DATA:
            raise
        reply = api.device_io_control(handle, c.IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, b"", room * 16)
    count = c.DiskExtentsHeader.parse(reply)["number_of_disk_extents"]
    out = []
    for i in range(count):
        ext = c.DISK_EXTENT.parse(reply, c.DiskExtentsHeader.size + i * c.DISK_EXTENT.size)
        out.append((int(ext["disk_number"]), int(ext["starting_offset"]), int(ext["extent_length"])))
    return out


def volume(api: Win32, name: str) -> Volume:
    """One volume with its mount points and extents; a volume on no disk (a RAM disk such as WinPE's
    X:, a CD) has no extents."""
    v = Volume(name=name)
    try:
        v.paths = api.volume_path_names(name)
    except Win32Error:
        pass  # not mounted anywhere
    try:
        handle = api.create_file(v.device, 0, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
    except Win32Error:
        return v
    try:
        v.extents = extents(api, handle)
    except Win32Error:
        pass  # ERROR_INVALID_FUNCTION: not on a disk this IOCTL knows (RAM disk, optical drive)
    finally:
        api.close_handle(handle)
    return v


def all_volumes(api: Win32) -> list[Volume]:
    try:
        names = api.find_volumes()
    except Win32Error:
        return []
    return [volume(api, n) for n in names]


def on_disk(api: Win32, number: int) -> list[Volume]:
    """The volumes with an extent on disk ``number``."""
    return [v for v in all_volumes(api) if number in v.disks()]


def of_path(api: Win32, path: str) -> Volume | None:
    """The volume holding ``path`` (a file or folder, or a letter such as ``E:\\``); None when Windows
    cannot name one (the path is not on a mounted volume)."""
    try:
        mount_point = api.volume_path_name(path)
        name = api.volume_name_for_mount_point(mount_point)
    except Win32Error:
        return None
    return volume(api, name)


@dataclass
class VolumeLocks:
    """The open, locked and dismounted volume handles of a target."""

    api: Win32
    handles: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def release(self) -> None:
        """Close the handles: the locks go with them, and Windows may mount what is now on the disk."""
        while self.handles:
            self.api.close_handle(self.handles.pop())


def lock_all(api: Win32, target: str, volumes: list[Volume]) -> VolumeLocks:
    """Lock and dismount every volume in ``volumes`` (all on the target), or refuse the target and
    release what was locked."""
    locks = VolumeLocks(api)
    try:
        for v in volumes:
            try:
                h = api.create_file(v.device, c.GENERIC_READ | c.GENERIC_WRITE,
                                    c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
            except Win32Error as e:
                raise TargetRefused(target=target, detail=f"volume {v.label} on it cannot be opened to lock it "
                                                          f"(Windows error {e.code})") from None
            locks.handles.append(h)
            try:
                api.device_io_control(h, c.FSCTL_LOCK_VOLUME, b"", 0)
            except Win32Error as e:
                raise TargetRefused(target=target, detail=f"volume {v.label} on it cannot be locked (Windows error "
                                                          f"{e.code}): a program has files open on it; close it "
                                                          "and try again") from None
            try:
                api.device_io_control(h, c.FSCTL_DISMOUNT_VOLUME, b"", 0)
            except Win32Error as e:
                raise TargetRefused(target=target, detail=f"volume {v.label} on it cannot be dismounted "
                                                          f"(Windows error {e.code})") from None
            locks.names.append(v.label)
    except BaseException:
        locks.release()
        raise
    return locks
