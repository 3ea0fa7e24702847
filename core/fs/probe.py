"""Filesystem detection for imaging: which parser decides the used bytes of a partition.

Detection reads the first sector only: "NTFS    " OEM id -> NTFS ($Bitmap); "-FVE-FS-" or the BitLocker
GUID -> BitLocker (whole partition, sector by sector); a sane FAT BPB -> FAT12/16/32; anything else ->
raw (whole partition). When a recognised NTFS/FAT volume turns out malformed, the partition is imaged
raw with a warning rather than failing the backup: imaging everything is always safe, only larger.
"""

from __future__ import annotations

from ..errors import FormatError, SectorBySectorWarning, UnsupportedError
from ..io.reader import Reader
from .fat import fat_usage, looks_like_fat
from .model import FsUsage
from .ntfs_boot import is_ntfs
from .ntfs_usage import ntfs_usage

BITLOCKER_OEM_ID = b"-FVE-FS-"
# {4967d63b-2e29-4ad8-8399-f6a339e3d0xx} in on-disk order, the last byte varying by variant
# (Vista 0e, Windows 7+ 01, To Go): at 0xA0 on BitLocker NTFS volumes, at 0x1A8 on To Go's FAT disguise.
BITLOCKER_GUID_PREFIX = bytes.fromhex("3bd66749292ed84a8399f6a339e3d0")
RAW_CLUSTER = 4096  # nominal unit for raw partitions (no filesystem clusters to follow)


def is_bitlocker(sector: bytes) -> bool:
    return (sector[3:11] == BITLOCKER_OEM_ID
            or sector[0xA0:0xAF] == BITLOCKER_GUID_PREFIX or sector[0x1A8:0x1B7] == BITLOCKER_GUID_PREFIX)


def raw_usage(reader: Reader, warning: str = "") -> FsUsage:
    """The whole partition, every sector."""
    return FsUsage(fs="raw", cluster_size=RAW_CLUSTER, used=[(0, reader.size)] if reader.size else [],
                   warnings=[warning] if warning else [])


def probe_usage(reader: Reader, *, type_id: str = "", keep_volatile: bool = False) -> FsUsage:
    """Detect the filesystem of a partition and return the byte extents that must be imaged.

    ``type_id`` (the partition table's type, e.g. "0x07" or a GPT type GUID) only enriches messages:
    detection trusts the content, never the label on the box. Read errors (`SourceError`) propagate.
    """
    sector = reader.read(0, 512)
    where = f" (partition type {type_id})" if type_id else ""
    if len(sector) < 512:
        return raw_usage(reader)
    if is_bitlocker(sector):
        usage = raw_usage(reader, f"BitLocker volume{where}: imaged sector by sector (encrypted, no usable "
                                  "allocation map); keep its recovery key at hand")
        usage.fs = "bitlocker"
        return usage
    if is_ntfs(sector):
        try:
            return ntfs_usage(reader, keep_volatile=keep_volatile)
        except (FormatError, UnsupportedError) as e:
            return raw_usage(reader, SectorBySectorWarning(fs="NTFS", where=where, detail=e.message))
    if looks_like_fat(sector, reader.size):
        try:
            return fat_usage(reader)
        except (FormatError, UnsupportedError) as e:
            return raw_usage(reader, SectorBySectorWarning(fs="FAT", where=where, detail=e.message))
    return raw_usage(reader)
