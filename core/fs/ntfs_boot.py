"""NTFS volume boot sector (BIOS parameter block): parse and validate the geometry everything else uses.

Layout after ntfs-3g ``include/ntfs-3g/layout.h`` (NTFS_BOOT_SECTOR) and BOOT.md §5.1. Every size
derived here (sector, cluster, MFT record, index block) is checked against the ranges NTFS allows before
any other parser uses it to compute an offset or a buffer size.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from .c_ntfs import NTFS_BOOT, NTFS_OEM_ID

# Windows 10 allows clusters up to 2 MiB; anything larger is corruption, and the cap keeps every
# per-cluster computation and buffer bounded.
MAX_CLUSTER_SIZE = 2 * 1024 * 1024
# MFT records and index blocks are 1-4 KiB in practice; 64 KiB is the largest any NTFS driver accepts
# and bounds the buffers allocated per record.
MIN_RECORD_SIZE = 512  # one fixup stride
MAX_RECORD_SIZE = 64 * 1024


@dataclass(frozen=True)
class NtfsBoot:
    """Validated NTFS geometry. Sizes in bytes; LCNs in clusters from the volume start."""

    bytes_per_sector: int
    cluster_size: int
    total_sectors: int
    mft_lcn: int
    mftmirr_lcn: int
    mft_record_size: int
    index_block_size: int
    serial: int
    hidden_sectors: int

    @property
    def nr_clusters(self) -> int:
        """Clusters the $Bitmap covers (the trailing partial cluster with the backup sector is none)."""
        return self.total_sectors * self.bytes_per_sector // self.cluster_size

    @property
    def volume_size(self) -> int:
        return self.total_sectors * self.bytes_per_sector

    @property
    def backup_boot_offset(self) -> int:
        """Byte offset of the backup boot sector: sector number ``total_sectors``."""
        return self.total_sectors * self.bytes_per_sector

    @property
    def serial_text(self) -> str:
        """The 64-bit serial as blkid prints it (16 uppercase hex digits)."""
        return f"{self.serial:016X}"


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _record_size(value: int, cluster_size: int, what: str) -> int:
    """Decode the clusters-per-record encoding: positive = clusters, negative n = 2**-n bytes."""
    if value > 0:
        size = value * cluster_size
    elif value < 0:
        shift = -value
        if shift > 31:  # 2**31 bytes would already be absurd; avoids building huge ints from disk data
            raise FormatError(what="NTFS boot sector", detail=f"{what} encoding {value} out of range")
        size = 1 << shift
    else:
        raise FormatError(what="NTFS boot sector", detail=f"{what} is 0")
    if not _is_pow2(size) or not MIN_RECORD_SIZE <= size <= MAX_RECORD_SIZE:
        raise FormatError(what="NTFS boot sector",
                          detail=f"{what} {size} bytes is not a power of two in "
                                 f"{MIN_RECORD_SIZE}..{MAX_RECORD_SIZE}")
    return size


def is_ntfs(sector: bytes) -> bool:
    """Cheap signature test (OEM id at offset 3) used for filesystem detection."""
    return sector[3:11] == NTFS_OEM_ID


def parse_ntfs_boot(sector: bytes, partition_size: int) -> NtfsBoot:
    """Parse and validate the boot sector of a volume occupying ``partition_size`` bytes."""
    f = NTFS_BOOT.parse(sector, what="NTFS boot sector")
    what = "NTFS boot sector"
    if f["oem_id"] != NTFS_OEM_ID:
        raise FormatError(what=what, detail=f"OEM id {f['oem_id']!r} is not 'NTFS    '")
    bps = f["bytes_per_sector"]
    if not _is_pow2(bps) or not 256 <= bps <= 4096:
        raise FormatError(what=what, detail=f"bytes per sector {bps} is not a power of two in 256..4096")
    spc_raw = f["sectors_per_cluster"]
    if spc_raw > 0x80:
        # Large clusters (Windows 10): the byte is a negative exponent, 2**(256 - v) sectors.
        shift = 256 - spc_raw
        if shift > 21:  # 2**21 sectors is already far beyond MAX_CLUSTER_SIZE; keep the int small
            raise FormatError(what=what, detail=f"sectors per cluster encoding {spc_raw:#x} out of range")
        spc = 1 << shift
    else:
        spc = spc_raw
    if not _is_pow2(spc):
        raise FormatError(what=what, detail=f"sectors per cluster {spc} is not a power of two")
    cluster_size = spc * bps
    if cluster_size > MAX_CLUSTER_SIZE:
        raise FormatError(what=what, detail=f"cluster size {cluster_size} exceeds {MAX_CLUSTER_SIZE}")
    # ntfs-3g (ntfs_boot_sector_is_ntfs) requires these FAT-era fields to be zero.
    for name in ("reserved_sectors", "fats", "root_entries", "sectors16", "sectors_per_fat", "large_sectors"):
        if f[name] != 0:
            raise FormatError(what=what, detail=f"{name} is {f[name]}, must be 0 on NTFS")
    total = f["total_sectors"]
    if total <= 0:
        raise FormatError(what=what, detail=f"total sectors {total} is not positive")
    if total * bps > partition_size:
        raise FormatError(what=what, detail=f"volume of {total} sectors x {bps} bytes exceeds the "
                                            f"partition ({partition_size} bytes)")
    nr_clusters = total * bps // cluster_size
    if nr_clusters < 1:
        raise FormatError(what=what, detail="volume is smaller than one cluster")
    for name in ("mft_lcn", "mftmirr_lcn"):
        if not 0 <= f[name] < nr_clusters:
            raise FormatError(what=what, detail=f"{name} {f[name]} outside the volume (0..{nr_clusters - 1})")
    record = _record_size(f["clusters_per_mft_record"], cluster_size, "MFT record size")
    index = _record_size(f["clusters_per_index_block"], cluster_size, "index block size")
    if f["mft_lcn"] * cluster_size + record > total * bps:
        raise FormatError(what=what, detail="first MFT record extends past the end of the volume")
    return NtfsBoot(bytes_per_sector=bps, cluster_size=cluster_size, total_sectors=total,
                    mft_lcn=f["mft_lcn"], mftmirr_lcn=f["mftmirr_lcn"], mft_record_size=record,
                    index_block_size=index, serial=f["serial"], hidden_sectors=f["hidden_sectors"])
