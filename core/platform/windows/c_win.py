"""Declarations of the Win32 disk structures the backend exchanges with Windows, and their constants.

Each reply of an IOCTL is declared once, as the project's on-disk structures are (`core.structs`),
with the layout the x64 compiler gives it: natural alignment, so the padding Windows leaves between
fields is declared as a named ``pad`` field (``DWORD`` then ``LARGE_INTEGER`` leaves four bytes).
The backend parses replies with these tables and the test fake packs its replies with the same ones,
so a layout mistake shows as a wrong value on both sides, never as two agreeing wrong guesses: the
sizes Windows documents (``sizeof``) are asserted in tests.

Variable-length replies are a header followed by an array: DRIVE_LAYOUT_INFORMATION_EX is
`DriveLayoutHeader` + one of the 40-byte style unions + ``PartitionCount`` × `PartitionInfoEx`;
VOLUME_DISK_EXTENTS is `DiskExtentsHeader` + ``NumberOfDiskExtents`` × `DiskExtent`;
STORAGE_DEVICE_DESCRIPTOR is followed by the NUL-terminated strings its offsets point at.
"""

from __future__ import annotations

from ...structs import Struct


def ctl_code(device_type: int, function: int, method: int = 0, access: int = 0) -> int:
    """Windows' CTL_CODE macro: how every control code below is built."""
    return (device_type << 16) | (access << 14) | (function << 2) | method


_DISK, _STORAGE, _FILE_SYSTEM, _VOLUME = 0x07, 0x2D, 0x09, 0x56  # FILE_DEVICE_* / IOCTL_*_BASE
_READ_ACCESS = 1

IOCTL_DISK_GET_DRIVE_GEOMETRY_EX = ctl_code(_DISK, 0x28)
IOCTL_DISK_GET_LENGTH_INFO = ctl_code(_DISK, 0x17, access=_READ_ACCESS)
IOCTL_DISK_GET_DRIVE_LAYOUT_EX = ctl_code(_DISK, 0x14)
IOCTL_DISK_UPDATE_PROPERTIES = ctl_code(_DISK, 0x50)
IOCTL_DISK_IS_WRITABLE = ctl_code(_DISK, 0x09)
IOCTL_STORAGE_QUERY_PROPERTY = ctl_code(_STORAGE, 0x500)
IOCTL_STORAGE_GET_DEVICE_NUMBER = ctl_code(_STORAGE, 0x420)
IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS = ctl_code(_VOLUME, 0)
FSCTL_LOCK_VOLUME = ctl_code(_FILE_SYSTEM, 6)
FSCTL_DISMOUNT_VOLUME = ctl_code(_FILE_SYSTEM, 8)

IOCTL_NAMES = {
    IOCTL_DISK_GET_DRIVE_GEOMETRY_EX: "IOCTL_DISK_GET_DRIVE_GEOMETRY_EX",
    IOCTL_DISK_GET_LENGTH_INFO: "IOCTL_DISK_GET_LENGTH_INFO",
    IOCTL_DISK_GET_DRIVE_LAYOUT_EX: "IOCTL_DISK_GET_DRIVE_LAYOUT_EX",
    IOCTL_DISK_UPDATE_PROPERTIES: "IOCTL_DISK_UPDATE_PROPERTIES",
    IOCTL_DISK_IS_WRITABLE: "IOCTL_DISK_IS_WRITABLE",
    IOCTL_STORAGE_QUERY_PROPERTY: "IOCTL_STORAGE_QUERY_PROPERTY",
    IOCTL_STORAGE_GET_DEVICE_NUMBER: "IOCTL_STORAGE_GET_DEVICE_NUMBER",
    IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS: "IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS",
    FSCTL_LOCK_VOLUME: "FSCTL_LOCK_VOLUME",
    FSCTL_DISMOUNT_VOLUME: "FSCTL_DISMOUNT_VOLUME",
}

# CreateFileW
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
OPEN_EXISTING = 3
FILE_FLAG_NO_BUFFERING = 0x20000000
FILE_FLAG_WRITE_THROUGH = 0x80000000

# GetLastError values the backend tells apart
ERROR_INVALID_FUNCTION = 1
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_NO_MORE_FILES = 18
ERROR_WRITE_PROTECT = 19
ERROR_NOT_READY = 21
ERROR_SHARING_VIOLATION = 32
ERROR_HANDLE_EOF = 38
ERROR_NOT_SUPPORTED = 50
ERROR_INVALID_PARAMETER = 87
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_MORE_DATA = 234

# STORAGE_PROPERTY_ID and STORAGE_QUERY_TYPE
STORAGE_DEVICE_PROPERTY = 0
STORAGE_ACCESS_ALIGNMENT_PROPERTY = 6
PROPERTY_STANDARD_QUERY = 0

# PARTITION_STYLE
PARTITION_STYLE_MBR = 0
PARTITION_STYLE_GPT = 1
PARTITION_STYLE_RAW = 2

# STORAGE_BUS_TYPE -> the bus names `core.disk.discover` uses on Linux ("" when it has none)
BUS_TYPES = {0: "", 1: "scsi", 2: "atapi", 3: "ata", 4: "1394", 5: "ssa", 6: "fibre", 7: "usb", 8: "raid",
             9: "iscsi", 10: "sas", 11: "sata", 12: "mmc", 13: "mmc", 14: "virtual", 15: "file",
             16: "spaces", 17: "nvme", 18: "scm", 19: "ufs"}

GET_LENGTH_INFORMATION = Struct("GET_LENGTH_INFORMATION", [("length", "Q")])

# DISK_GEOMETRY (24 bytes) then DiskSize; the variable Data[] after it (partition and detection
# information) is not used.
DISK_GEOMETRY_EX = Struct("DISK_GEOMETRY_EX", [
    ("cylinders", "Q"),
    ("media_type", "I"),
    ("tracks_per_cylinder", "I"),
    ("sectors_per_track", "I"),
    ("bytes_per_sector", "I"),
    ("disk_size", "Q"),
])

STORAGE_PROPERTY_QUERY = Struct("STORAGE_PROPERTY_QUERY", [
    ("property_id", "I"),
    ("query_type", "I"),
    ("additional_parameters", "1s"),
    ("pad", "3s"),
])

# The fixed part (36 bytes; sizeof is 40 with RawDeviceProperties[1] and its padding). Offsets are
# from the start of the reply, 0 when the device has no such string.
STORAGE_DEVICE_DESCRIPTOR = Struct("STORAGE_DEVICE_DESCRIPTOR", [
    ("version", "I"),
    ("size", "I"),
    ("device_type", "B"),
    ("device_type_modifier", "B"),
    ("removable_media", "B"),
    ("command_queueing", "B"),
    ("vendor_id_offset", "I"),
    ("product_id_offset", "I"),
    ("product_revision_offset", "I"),
    ("serial_number_offset", "I"),
    ("bus_type", "I"),
    ("raw_properties_length", "I"),
])

STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR = Struct("STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR", [
    ("version", "I"),
    ("size", "I"),
    ("bytes_per_cache_line", "I"),
    ("bytes_offset_for_cache_alignment", "I"),
    ("bytes_per_logical_sector", "I"),
    ("bytes_per_physical_sector", "I"),
    ("bytes_offset_for_sector_alignment", "I"),
])

STORAGE_DEVICE_NUMBER = Struct("STORAGE_DEVICE_NUMBER", [
    ("device_type", "I"),
    ("device_number", "I"),
    ("partition_number", "I"),
])

DriveLayoutHeader = Struct("DRIVE_LAYOUT_INFORMATION_EX header", [
    ("partition_style", "I"),
    ("partition_count", "I"),
])

# The union after the header is as large as its GPT member (36 bytes, aligned to 8: 40).
DRIVE_LAYOUT_INFORMATION_MBR = Struct("DRIVE_LAYOUT_INFORMATION_MBR", [
    ("signature", "I"),
    ("checksum", "I"),
    ("pad", "32s"),
])

DRIVE_LAYOUT_INFORMATION_GPT = Struct("DRIVE_LAYOUT_INFORMATION_GPT", [
    ("disk_id", "16s"),
    ("starting_usable_offset", "Q"),
    ("usable_length", "Q"),
    ("max_partition_count", "I"),
    ("pad", "4s"),
])

# 144 bytes: the style union at 32 is as large as its GPT member (112 bytes).
PARTITION_INFORMATION_EX = Struct("PARTITION_INFORMATION_EX", [
    ("partition_style", "I"),
    ("pad", "4s"),
    ("starting_offset", "Q"),
    ("partition_length", "Q"),
    ("partition_number", "I"),
    ("rewrite_partition", "B"),
    ("is_service_partition", "B"),
    ("pad2", "2s"),
    ("style_info", "112s"),
])

PARTITION_INFORMATION_MBR = Struct("PARTITION_INFORMATION_MBR", [
    ("partition_type", "B"),
    ("boot_indicator", "B"),
    ("recognized_partition", "B"),
    ("pad", "1s"),
    ("hidden_sectors", "I"),
    ("partition_id", "16s"),
    ("pad2", "88s"),  # the rest of the union
])

PARTITION_INFORMATION_GPT = Struct("PARTITION_INFORMATION_GPT", [
    ("partition_type", "16s"),
    ("partition_id", "16s"),
    ("attributes", "Q"),
    ("name", "72s"),  # WCHAR[36], UTF-16LE, NUL-padded
])

DiskExtentsHeader = Struct("VOLUME_DISK_EXTENTS header", [
    ("number_of_disk_extents", "I"),
    ("pad", "4s"),
])

DISK_EXTENT = Struct("DISK_EXTENT", [
    ("disk_number", "I"),
    ("pad", "4s"),
    ("starting_offset", "Q"),
    ("extent_length", "Q"),
])

# Room asked for a drive layout at first: the header, the union and 128 entries (a GPT's usual count).
LAYOUT_ROOM = DriveLayoutHeader.size + DRIVE_LAYOUT_INFORMATION_GPT.size + 128 * PARTITION_INFORMATION_EX.size
