"""What a disk handle says about itself: size, sector sizes, model, serial, bus, partition layout.

Each function sends one IOCTL through the seam and parses the reply with the declared structs of
`c_win`; a reply shorter than its struct is a `core.errors.FormatError` (from `core.structs`), never
a misread field. ``\\\\.\\PhysicalDriveN`` names are parsed here too (`disk_number_of`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from . import c_win as c
from .seam import Win32, Win32Error

_DRIVE_PATH = re.compile(r"^\\\\[.?]\\PhysicalDrive(\d+)$", re.IGNORECASE)


def disk_number_of(path: str) -> int | None:
    """N of ``\\\\.\\PhysicalDriveN`` (or ``\\\\?\\``); None for any other path (a file)."""
    m = _DRIVE_PATH.match(path)
    return int(m.group(1)) if m else None


def drive_path(number: int) -> str:
    return f"\\\\.\\PhysicalDrive{number}"


@dataclass
class DeviceFacts:
    """What identifies a disk and how it is addressed."""

    number: int
    size: int
    logical_sector_size: int
    physical_sector_size: int
    model: str = ""
    serial: str = ""
    bus: str = ""
    removable: bool = False
    read_only: bool = False


@dataclass
class LayoutPartition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type_id: str  # MBR "0x07", GPT type GUID (lowercase), as core.partition.model.Partition
    bootable: bool = False
    guid: str = ""
    name: str = ""


@dataclass
class DriveLayout:
    style: str  # "mbr", "gpt", "raw"
    disk_id: str  # "0x1234abcd" or the GPT disk GUID
    partitions: list[LayoutPartition] = field(default_factory=list)


def device_number(api: Win32, handle: int) -> int:
    reply = api.device_io_control(handle, c.IOCTL_STORAGE_GET_DEVICE_NUMBER, b"", c.STORAGE_DEVICE_NUMBER.size)
    return int(c.STORAGE_DEVICE_NUMBER.parse(reply)["device_number"])


def _property(api: Win32, handle: int, property_id: int, room: int) -> bytes:
    query = c.STORAGE_PROPERTY_QUERY.build(property_id=property_id, query_type=c.PROPERTY_STANDARD_QUERY,
                                           additional_parameters=b"\0", pad=b"\0" * 3)
    reply = api.device_io_control(handle, c.IOCTL_STORAGE_QUERY_PROPERTY, query, room)
    # A reply cut short by the buffer still carries its full Size (the STORAGE_DESCRIPTOR_HEADER):
    # ask once more with that much room.
    if len(reply) >= 8:
        full = int.from_bytes(reply[4:8], "little")
        if len(reply) < full <= 1 << 16:
            reply = api.device_io_control(handle, c.IOCTL_STORAGE_QUERY_PROPERTY, query, full)
    return reply


def _ascii_at(reply: bytes, offset: int) -> str:
    if offset <= 0 or offset >= len(reply):
        return ""
    end = reply.find(b"\0", offset)
    return reply[offset:end if end >= 0 else len(reply)].decode("ascii", "replace").strip()


def facts(api: Win32, handle: int) -> DeviceFacts:
    """Everything `DeviceFacts` holds, from the handle of an open disk (GENERIC_READ)."""
    length = c.GET_LENGTH_INFORMATION.parse(
        api.device_io_control(handle, c.IOCTL_DISK_GET_LENGTH_INFO, b"", c.GET_LENGTH_INFORMATION.size))["length"]
    geometry = c.DISK_GEOMETRY_EX.parse(
        api.device_io_control(handle, c.IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, b"", c.DISK_GEOMETRY_EX.size + 64))
    logical = int(geometry["bytes_per_sector"])
    physical = logical
    try:
        align = c.STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR.parse(
            _property(api, handle, c.STORAGE_ACCESS_ALIGNMENT_PROPERTY, c.STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR.size))
        physical = int(align["bytes_per_physical_sector"]) or logical
    except Win32Error:
        pass  # older drivers answer no alignment query: the physical sector is then the logical one
    out = DeviceFacts(number=device_number(api, handle), size=int(length), logical_sector_size=logical,
                      physical_sector_size=physical)
    try:
        reply = _property(api, handle, c.STORAGE_DEVICE_PROPERTY, 1024)
    except Win32Error:
        reply = b""  # no descriptor (some virtual disks): model, serial and bus stay unknown
    if len(reply) >= c.STORAGE_DEVICE_DESCRIPTOR.size:
        d = c.STORAGE_DEVICE_DESCRIPTOR.parse(reply)
        vendor = _ascii_at(reply, d["vendor_id_offset"])
        product = _ascii_at(reply, d["product_id_offset"])
        # The model is the product id, as Linux's sysfs "model" is (the vendor is often "ATA" or empty).
        out.model = product or vendor
        out.serial = _ascii_at(reply, d["serial_number_offset"])
        out.bus = c.BUS_TYPES.get(int(d["bus_type"]), "")
        out.removable = bool(d["removable_media"])
    try:
        api.device_io_control(handle, c.IOCTL_DISK_IS_WRITABLE, b"", 0)
    except Win32Error as e:
        out.read_only = e.code == c.ERROR_WRITE_PROTECT
    return out


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=bytes(raw)))


def layout(api: Win32, handle: int) -> DriveLayout:
    """IOCTL_DISK_GET_DRIVE_LAYOUT_EX: the partition table as Windows has read it."""
    room = c.LAYOUT_ROOM
    while True:
        try:
            reply = api.device_io_control(handle, c.IOCTL_DISK_GET_DRIVE_LAYOUT_EX, b"", room)
            break
        except Win32Error as e:
            if e.code not in (c.ERROR_INSUFFICIENT_BUFFER, c.ERROR_MORE_DATA) or room > 1 << 20:
                raise
            room *= 2
    head = c.DriveLayoutHeader.parse(reply)
    union_at = c.DriveLayoutHeader.size
    entries_at = union_at + c.DRIVE_LAYOUT_INFORMATION_GPT.size
    style = {c.PARTITION_STYLE_MBR: "mbr", c.PARTITION_STYLE_GPT: "gpt"}.get(head["partition_style"], "raw")
    if style == "mbr":
        disk_id = f"{c.DRIVE_LAYOUT_INFORMATION_MBR.parse(reply, union_at)['signature']:#010x}"
    elif style == "gpt":
        disk_id = _guid(c.DRIVE_LAYOUT_INFORMATION_GPT.parse(reply, union_at)["disk_id"])
    else:
        disk_id = ""
    out = DriveLayout(style=style, disk_id=disk_id)
    for i in range(head["partition_count"]):
        p = c.PARTITION_INFORMATION_EX.parse(reply, entries_at + i * c.PARTITION_INFORMATION_EX.size)
        info = p["style_info"]
        if p["partition_style"] == c.PARTITION_STYLE_MBR:
            mbr = c.PARTITION_INFORMATION_MBR.parse(info)
            if mbr["partition_type"] == 0 or p["partition_number"] == 0:
                continue  # an empty slot: MBR layouts list entries four by four
            out.partitions.append(LayoutPartition(
                number=p["partition_number"], start=p["starting_offset"], size=p["partition_length"],
                type_id=f"0x{mbr['partition_type']:02x}", bootable=bool(mbr["boot_indicator"])))
        elif p["partition_style"] == c.PARTITION_STYLE_GPT:
            gpt = c.PARTITION_INFORMATION_GPT.parse(info)
            if gpt["partition_type"] == bytes(16):
                continue
            name = bytes(gpt["name"]).decode("utf-16-le", "replace").split("\0", 1)[0]
            out.partitions.append(LayoutPartition(
                number=p["partition_number"], start=p["starting_offset"], size=p["partition_length"],
                type_id=_guid(gpt["partition_type"]), guid=_guid(gpt["partition_id"]), name=name))
    return out
