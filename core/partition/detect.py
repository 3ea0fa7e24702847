"""Which partition table a disk has, and its parsed model: the one entry point the engine calls.

GPT is recognised the way Linux and UEFI do it: a protective MBR (an entry of type 0xEE) in LBA 0, then
the GPT headers (the backup is used when the primary is damaged). Anything else with the 0x55AA
signature is an MBR table. A disk without the signature has no partition table and is refused with a
`FormatError` naming the reason (blank disk, or a GPT whose protective MBR was wiped).
"""

from __future__ import annotations

from ..errors import FormatError, UsageError
from ..io.reader import Reader, read_exact
from . import gpt, mbr
from .c_gpt import SIGNATURE
from .c_mbr import BOOT_SIGNATURE, BOOT_SIGNATURE_OFFSET, GPT_PROTECTIVE_TYPE, decode_entries
from .model import PartitionTable

# Logical sector sizes a partition table can be laid out for; 512 and 4096 are the real ones (512n/512e
# and 4Kn, BOOT.md §11). Anything else is a caller bug, not disk data.
SECTOR_SIZES = (512, 1024, 2048, 4096)

# Volume boot sector markers: a filesystem written to the whole disk ("superfloppy") also ends its
# sector 0 with 0x55AA, and its boot code would otherwise be read as garbage partition entries.
_VBR_MARKERS = ((3, b"NTFS    ", "NTFS"), (3, b"-FVE-FS-", "BitLocker"), (3, b"EXFAT   ", "exFAT"),
                (0x52, b"FAT32   ", "FAT32"), (0x36, b"FAT1", "FAT12/16"))


def read_partition_table(reader: Reader, sector_size: int) -> PartitionTable:
    """Detect GPT or MBR on ``reader`` (a whole disk) and parse it; `FormatError` when there is none."""
    if sector_size not in SECTOR_SIZES:
        raise UsageError(detail=f"sector size {sector_size} is not one of {SECTOR_SIZES}")
    if reader.size < sector_size:
        raise FormatError(what="partition table", detail=f"disk of {reader.size} bytes has no sector 0")
    sector0 = read_exact(reader, 0, sector_size, "MBR")
    if int.from_bytes(sector0[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2], "little") != BOOT_SIGNATURE:
        if reader.read(sector_size, len(SIGNATURE)) == SIGNATURE:
            raise FormatError(what="partition table",
                              detail="no partition table: a GPT header is at LBA 1 but sector 0 has no "
                                     "protective MBR (0x55AA missing)")
        raise FormatError(what="partition table", detail="no partition table (sector 0 has no 0x55AA "
                                                         "signature: blank or unpartitioned disk)")
    # A boot sector starts with a jump (EB xx 90 / E9 xx xx); MBR code never does (Windows: 33 C0).
    is_vbr = sector0[0] == 0xE9 or (sector0[0] == 0xEB and sector0[2] == 0x90)
    for offset, marker, fs in _VBR_MARKERS:
        if is_vbr and sector0[offset:offset + len(marker)] == marker:
            raise FormatError(what="partition table", detail=f"no partition table: sector 0 is a {fs} boot "
                                                             "sector (a filesystem spans the whole disk)")
    if any(e.used and e.type == GPT_PROTECTIVE_TYPE for e in decode_entries(sector0, "MBR")):
        return gpt.parse(reader, sector_size, sector0)
    return mbr.parse(reader, sector_size)
