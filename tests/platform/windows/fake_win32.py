"""A fake of the Win32 calls the Windows disk backend makes, over real disk image files, that enforces
Windows' rules (the `core.platform.windows.seam.Win32` interface; installed with `seam.install`).

Disks are image files built by the real tools (sfdisk, mkntfs: tests/images.py), so reads return real
partition tables and filesystems. What Windows would refuse, this refuses with Windows' error code:

- raw disk I/O whose offset or length is not a multiple of the sector size, or (FILE_FLAG_NO_BUFFERING)
  from a buffer not aligned to it: ERROR_INVALID_PARAMETER (87);
- a write through a handle opened without GENERIC_WRITE, or to a disk while one of its volumes is
  mounted and not locked: ERROR_ACCESS_DENIED (5); to a write-protected disk: ERROR_WRITE_PROTECT;
- FSCTL_LOCK_VOLUME on a volume with open files (``busy``) or locked by another handle: 5;
- an open that conflicts with the share mode of another handle: ERROR_SHARING_VIOLATION (32); so does
  opening a page file the system has in use (``files_in_use``);
- a reply buffer too small for the drive layout: ERROR_INSUFFICIENT_BUFFER (122).

IOCTL replies are packed with the backend's own declared structs (`core.platform.windows.c_win`), the
drive layout from the partition table the image holds at that moment. Volumes are made, as Windows
makes them, for partitions of the types it mounts (MBR NTFS/FAT, GPT basic data and ESP); closing the
handle that holds a lock unlocks the volume and lets it mount again. Every call that matters is logged
in `FakeWin32.log` (opens, writes, flushes, IOCTLs by name) for the tests to read the order of events.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import FormatError
from core.io.reader import FdReader
from core.partition.detect import read_partition_table
from core.platform import files as pfiles
from core.platform.windows import c_win as c
from core.platform.windows.seam import Win32Error

_DRIVE = re.compile(r"^\\\\[.?]\\PhysicalDrive(\d+)$", re.IGNORECASE)
_VOLUME = re.compile(r"^\\\\[.?]\\(Volume\{[0-9a-f-]+\})$", re.IGNORECASE)
_LETTER = re.compile(r"^\\\\[.?]\\([A-Z]:)$", re.IGNORECASE)
MOUNTED_TYPES = {"0x01", "0x04", "0x06", "0x07", "0x0b", "0x0c", "0x0e",
                 "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}


@dataclass
class FakeDisk:
    image: Path
    model: str = "Fake SSD 860"
    serial: str = "S3Z0FAKE0001"
    bus_type: int = 11  # BusTypeSata
    logical: int = 512
    physical: int = 4096
    letters: dict[int, list[str]] = field(default_factory=dict)  # partition number -> "E:\\", ...
    busy: set[int] = field(default_factory=set)  # partitions whose volume has open files
    read_only: bool = False
    removable: bool = False


@dataclass
class FakeVolume:
    name: str  # \\?\Volume{GUID}\
    disk: int | None  # None: a RAM disk (WinPE's X:)
    partition: int = 0
    start: int = 0
    length: int = 0
    paths: list[str] = field(default_factory=list)
    busy: bool = False
    locked_by: int | None = None
    mounted: bool = True


@dataclass
class _Handle:
    kind: str  # "disk", "volume", "file"
    key: Any  # disk number, volume name, file path
    access: int
    share: int
    flags: int


class FakeWin32:
    """`Win32` over image files; see the module docstring for the rules it enforces."""

    def __init__(self, disks: dict[int, FakeDisk], *, system_directory: str = "X:\\Windows\\System32",
                 registry: dict[tuple[str, str], str | list[str]] | None = None,
                 files: set[str] | None = None, files_in_use: set[str] | None = None) -> None:
        self.disks = disks
        # through core.platform.files: the fake runs under Windows' Python too (tests/platform/windows/
        # test_adapt_wine.py), where os.open is text mode and os.pread/pwrite do not exist
        self.fds = {n: pfiles.open_fd(d.image, os.O_RDWR) for n, d in disks.items()}
        self.system = system_directory
        self.registry = registry or {}
        self.files = {f.lower() for f in files or set()}
        self.in_use = {f.lower() for f in files_in_use or set()}
        self.handles: dict[int, _Handle] = {}
        self.next_handle = 0x100
        self.allocations: dict[int, tuple[mmap.mmap, Any]] = {}
        self.log: list[tuple[Any, ...]] = []
        self.volumes = [FakeVolume(name="\\\\?\\Volume{00000000-0000-0000-0000-00000000ffff}\\", disk=None,
                                   paths=["X:\\"])]
        for n in disks:
            self.volumes += self._disk_volumes(n, first=True)

    def _disk_volumes(self, n: int, *, first: bool = False) -> list[FakeVolume]:
        """The volumes Windows mounts for disk ``n``'s partition table as it is now."""
        d = self.disks[n]
        try:
            table = read_partition_table(FdReader(self.fds[n], os.path.getsize(d.image)), d.logical)
        except FormatError:
            return []  # a blank disk: no volume on it
        out = []
        for p in table.partitions if table else ():
            if p.type_id not in MOUNTED_TYPES:
                continue
            # a volume that appears later (a new table) is another volume: another GUID
            guid = uuid.uuid5(uuid.NAMESPACE_OID, f"{n}-{p.number}" if first else f"{n}-{p.number}-{p.start}-{p.size}")
            out.append(FakeVolume(name=f"\\\\?\\Volume{{{guid}}}\\", disk=n, partition=p.number, start=p.start,
                                  length=p.size, paths=list(d.letters.get(p.number, [])), busy=p.number in d.busy))
        return out

    def _rescan(self, n: int) -> None:
        """What Windows does on IOCTL_DISK_UPDATE_PROPERTIES: the volumes of partitions that are gone go,
        those of new partitions arrive (unlocked and mounted), those of unchanged ones stay as they are."""
        old = [v for v in self.volumes if v.disk == n]
        keep, fresh = [], []
        for v in self._disk_volumes(n):
            same = next((o for o in old if (o.partition, o.start, o.length) == (v.partition, v.start, v.length)), None)
            (keep if same else fresh).append(same or v)
        self.volumes = [v for v in self.volumes if v.disk != n] + keep + fresh
        self.log.append(("rescan", n, [v.name for v in fresh]))

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)

    # --- helpers ------------------------------------------------------------------------------------

    def _volume(self, key: str) -> FakeVolume:
        for v in self.volumes:
            if v.name.rstrip("\\").lower().endswith(key.lower()) or any(p.lower() == key.lower() + "\\" for p in v.paths):
                return v
        raise Win32Error(c.ERROR_FILE_NOT_FOUND, "CreateFileW")

    def _handle(self, handle: int, kind: str | None = None) -> _Handle:
        h = self.handles.get(handle)
        if h is None or (kind and h.kind != kind):
            raise Win32Error(c.ERROR_INVALID_HANDLE, "handle")
        return h

    def ioctls(self, name: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == "ioctl" and e[1] == name]

    # --- Win32 --------------------------------------------------------------------------------------

    def create_file(self, path: str, access: int, share: int, flags: int) -> int:
        if m := _DRIVE.match(path):
            n = int(m.group(1))
            if n not in self.disks:
                raise Win32Error(c.ERROR_FILE_NOT_FOUND, "CreateFileW")
            kind, key = "disk", n
        elif m := (_VOLUME.match(path) or _LETTER.match(path)):
            kind, key = "volume", self._volume(m.group(1)).name
        elif path.lower() in self.in_use:
            raise Win32Error(c.ERROR_SHARING_VIOLATION, "CreateFileW")
        elif path.lower() in self.files:
            kind, key = "file", path.lower()
        else:
            raise Win32Error(c.ERROR_FILE_NOT_FOUND, "CreateFileW")
        for h in self.handles.values():
            if (h.kind, h.key) != (kind, key):
                continue
            # Windows' share check both ways: what the others do must be shared by the new handle, and
            # what the new handle does must be shared by the others.
            for bit, shared in ((c.GENERIC_READ, c.FILE_SHARE_READ), (c.GENERIC_WRITE, c.FILE_SHARE_WRITE)):
                if (h.access & bit and not share & shared) or (access & bit and not h.share & shared):
                    raise Win32Error(c.ERROR_SHARING_VIOLATION, "CreateFileW")
        handle = self.next_handle
        self.next_handle += 4
        self.handles[handle] = _Handle(kind, key, access, share, flags)
        self.log.append(("open", path, access, flags))
        return handle

    def close_handle(self, handle: int) -> None:
        self.handles.pop(handle, None)
        for v in self.volumes:
            if v.locked_by == handle:
                v.locked_by, v.mounted = None, True  # unlocked: Windows mounts it again on next access
                self.log.append(("unlock", v.name))

    def _check_io(self, h: _Handle, address: int, length: int, offset: int) -> FakeDisk:
        d = self.disks[h.key]
        ss = d.logical
        if offset % ss or length % ss or (h.flags & c.FILE_FLAG_NO_BUFFERING and address % ss):
            raise Win32Error(c.ERROR_INVALID_PARAMETER, "transfer")
        return d

    def read_file(self, handle: int, address: int, length: int, offset: int) -> int:
        h = self._handle(handle, "disk")
        if not h.access & c.GENERIC_READ:
            raise Win32Error(c.ERROR_ACCESS_DENIED, "ReadFile")
        self._check_io(h, address, length, offset)
        data = pfiles.pread(self.fds[h.key], length, offset)
        ctypes.memmove(address, data, len(data))
        self.log.append(("read", h.key, offset, length))
        return len(data)

    def write_file(self, handle: int, address: int, length: int, offset: int) -> int:
        h = self._handle(handle, "disk")
        if not h.access & c.GENERIC_WRITE:
            raise Win32Error(c.ERROR_ACCESS_DENIED, "WriteFile")
        d = self._check_io(h, address, length, offset)
        if d.read_only:
            raise Win32Error(c.ERROR_WRITE_PROTECT, "WriteFile")
        if any(v.disk == h.key and v.mounted and v.locked_by is None for v in self.volumes):
            raise Win32Error(c.ERROR_ACCESS_DENIED, "WriteFile")
        if offset + length > os.path.getsize(d.image):
            raise Win32Error(c.ERROR_INVALID_PARAMETER, "WriteFile")
        n = pfiles.pwrite(self.fds[h.key], ctypes.string_at(address, length), offset)
        self.log.append(("write", h.key, offset, length))
        return n

    def flush_file_buffers(self, handle: int) -> None:
        h = self._handle(handle)
        if not h.access & c.GENERIC_WRITE:
            raise Win32Error(c.ERROR_ACCESS_DENIED, "FlushFileBuffers")
        self.log.append(("flush", h.key))

    def virtual_alloc(self, size: int) -> int:
        m = mmap.mmap(-1, size)  # anonymous: page-aligned and zeroed, as VirtualAlloc's memory
        view = (ctypes.c_char * size).from_buffer(m)
        address = ctypes.addressof(view)
        self.allocations[address] = (m, view)
        return address

    def virtual_free(self, address: int) -> None:
        m, view = self.allocations.pop(address)
        del view
        m.close()

    def device_io_control(self, handle: int, code: int, inbuf: bytes, out_size: int) -> bytes:
        h = self._handle(handle)
        name = c.IOCTL_NAMES.get(code, hex(code))
        self.log.append(("ioctl", name, h.key))
        if h.kind == "disk":
            reply = self._disk_ioctl(h, code, inbuf, out_size)
        elif h.kind == "volume":
            reply = self._volume_ioctl(handle, h, code)
        else:
            raise Win32Error(c.ERROR_INVALID_FUNCTION, name)
        return reply[:out_size]

    def _disk_ioctl(self, h: _Handle, code: int, inbuf: bytes, out_size: int) -> bytes:
        n = h.key
        d = self.disks[n]
        size = os.path.getsize(d.image)
        if code == c.IOCTL_DISK_GET_LENGTH_INFO:
            if not h.access & c.GENERIC_READ:  # FILE_READ_ACCESS in its control code
                raise Win32Error(c.ERROR_ACCESS_DENIED, "DeviceIoControl")
            return c.GET_LENGTH_INFORMATION.build(length=size)
        if code == c.IOCTL_DISK_GET_DRIVE_GEOMETRY_EX:
            if out_size < c.DISK_GEOMETRY_EX.size:
                raise Win32Error(c.ERROR_INSUFFICIENT_BUFFER, "DeviceIoControl")
            return c.DISK_GEOMETRY_EX.build(cylinders=size // (255 * 63 * d.logical), media_type=12,
                                            tracks_per_cylinder=255, sectors_per_track=63,
                                            bytes_per_sector=d.logical, disk_size=size)
        if code == c.IOCTL_STORAGE_QUERY_PROPERTY:
            q = c.STORAGE_PROPERTY_QUERY.parse(inbuf)
            if q["property_id"] == c.STORAGE_ACCESS_ALIGNMENT_PROPERTY:
                return c.STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR.build(
                    version=28, size=28, bytes_per_cache_line=64, bytes_per_logical_sector=d.logical,
                    bytes_per_physical_sector=d.physical)
            if q["property_id"] == c.STORAGE_DEVICE_PROPERTY:
                return self._descriptor(d)
            raise Win32Error(c.ERROR_NOT_SUPPORTED, "DeviceIoControl")
        if code == c.IOCTL_STORAGE_GET_DEVICE_NUMBER:
            return c.STORAGE_DEVICE_NUMBER.build(device_type=7, device_number=n, partition_number=0)
        if code == c.IOCTL_DISK_GET_DRIVE_LAYOUT_EX:
            reply = self._layout(n, d, size)
            if len(reply) > out_size:
                raise Win32Error(c.ERROR_INSUFFICIENT_BUFFER, "DeviceIoControl")
            return reply
        if code == c.IOCTL_DISK_IS_WRITABLE:
            if d.read_only:
                raise Win32Error(c.ERROR_WRITE_PROTECT, "DeviceIoControl")
            return b""
        if code == c.IOCTL_DISK_UPDATE_PROPERTIES:
            self._rescan(n)
            return b""
        raise Win32Error(c.ERROR_INVALID_FUNCTION, "DeviceIoControl")

    def _descriptor(self, d: FakeDisk) -> bytes:
        strings = b""
        offsets = {}
        base = c.STORAGE_DEVICE_DESCRIPTOR.size + 4  # after RawDeviceProperties[1] and its padding
        for key, text in (("vendor", "ATA"), ("product", d.model), ("revision", "1B6Q"), ("serial", d.serial)):
            offsets[key] = base + len(strings)
            strings += text.encode() + b"\0"
        head = c.STORAGE_DEVICE_DESCRIPTOR.build(
            version=c.STORAGE_DEVICE_DESCRIPTOR.size + 4, size=base + len(strings), device_type=0,
            removable_media=int(d.removable), vendor_id_offset=offsets["vendor"],
            product_id_offset=offsets["product"], product_revision_offset=offsets["revision"],
            serial_number_offset=offsets["serial"], bus_type=d.bus_type)
        return head + bytes(4) + strings

    def _layout(self, n: int, d: FakeDisk, size: int) -> bytes:
        try:
            table = read_partition_table(FdReader(self.fds[n], size), d.logical)
        except FormatError:  # Windows reads a blank or unreadable table as none at all
            table = None
        if table is None:
            return c.DriveLayoutHeader.build(partition_style=c.PARTITION_STYLE_RAW) + bytes(40)
        entries = []
        if table.scheme == "mbr":
            by_number = {p.number: p for p in table.partitions}
            count = max(4, -(-max(by_number, default=0) // 4) * 4)
            for i in range(1, count + 1):
                p = by_number.get(i)
                info = c.PARTITION_INFORMATION_MBR.build(
                    partition_type=int(p.type_id, 16) if p else 0, boot_indicator=int(bool(p and p.bootable)),
                    recognized_partition=int(bool(p and p.type_id in MOUNTED_TYPES)),
                    hidden_sectors=p.start // d.logical if p else 0)
                entries.append(c.PARTITION_INFORMATION_EX.build(
                    partition_style=c.PARTITION_STYLE_MBR, starting_offset=p.start if p else 0,
                    partition_length=p.size if p else 0, partition_number=i if p else 0, style_info=info))
            union = c.DRIVE_LAYOUT_INFORMATION_MBR.build(signature=int(table.disk_id, 16))
            style = c.PARTITION_STYLE_MBR
        else:
            for p in table.partitions:
                info = c.PARTITION_INFORMATION_GPT.build(
                    partition_type=uuid.UUID(p.type_id).bytes_le,
                    partition_id=(uuid.UUID(p.guid) if p.guid else uuid.UUID(int=0)).bytes_le,
                    attributes=p.attributes, name=p.name.encode("utf-16-le")[:72])
                entries.append(c.PARTITION_INFORMATION_EX.build(
                    partition_style=c.PARTITION_STYLE_GPT, starting_offset=p.start, partition_length=p.size,
                    partition_number=p.number, style_info=info))
            union = c.DRIVE_LAYOUT_INFORMATION_GPT.build(disk_id=uuid.UUID(table.disk_id).bytes_le,
                                                         starting_usable_offset=34 * d.logical,
                                                         usable_length=size - 67 * d.logical,
                                                         max_partition_count=128)
            style = c.PARTITION_STYLE_GPT
        return c.DriveLayoutHeader.build(partition_style=style, partition_count=len(entries)) + union + b"".join(entries)

    def _volume_ioctl(self, handle: int, h: _Handle, code: int) -> bytes:
        v = next(v for v in self.volumes if v.name == h.key)
        if code == c.IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS:
            if v.disk is None:
                raise Win32Error(c.ERROR_INVALID_FUNCTION, "DeviceIoControl")  # a RAM disk has no disk under it
            return (c.DiskExtentsHeader.build(number_of_disk_extents=1)
                    + c.DISK_EXTENT.build(disk_number=v.disk, starting_offset=v.start, extent_length=v.length))
        if code == c.FSCTL_LOCK_VOLUME:
            if not h.access & c.GENERIC_WRITE or v.busy or v.locked_by not in (None, handle):
                raise Win32Error(c.ERROR_ACCESS_DENIED, "DeviceIoControl")
            v.locked_by = handle
            return b""
        if code == c.FSCTL_DISMOUNT_VOLUME:
            if not h.access & c.GENERIC_WRITE:
                raise Win32Error(c.ERROR_ACCESS_DENIED, "DeviceIoControl")
            v.mounted = False
            return b""
        raise Win32Error(c.ERROR_INVALID_FUNCTION, "DeviceIoControl")

    def find_volumes(self) -> list[str]:
        return [v.name for v in self.volumes]

    def volume_path_names(self, volume: str) -> list[str]:
        for v in self.volumes:
            if v.name.lower() == volume.lower():
                return list(v.paths)
        raise Win32Error(c.ERROR_FILE_NOT_FOUND, "GetVolumePathNamesForVolumeNameW")

    def volume_path_name(self, path: str) -> str:
        p = path.lower() if path.endswith("\\") else path.lower() + "\\"
        best = max((mp for v in self.volumes for mp in v.paths if p.startswith(mp.lower())), key=len, default=None)
        if best is None:
            raise Win32Error(c.ERROR_PATH_NOT_FOUND, "GetVolumePathNameW")
        return best

    def volume_name_for_mount_point(self, mount_point: str) -> str:
        for v in self.volumes:
            if any(mp.lower() == mount_point.lower() for mp in v.paths):
                return v.name
        raise Win32Error(c.ERROR_FILE_NOT_FOUND, "GetVolumeNameForVolumeMountPointW")

    def system_directory(self) -> str:
        return self.system

    def registry_value(self, key: str, name: str) -> str | list[str] | None:
        return self.registry.get((key, name))
