"""GPT on-disk declarations: header and partition entry field tables, constants, GUID encoding.

Behaviour (validation, choosing primary or backup, rewriting, building) is in `core.partition.gpt`; this
module only says where the bytes are (BOOT.md §3.2, §3.3).
"""

from __future__ import annotations

import uuid

from ..errors import UsageError
from ..structs import Struct

GPT_HEADER = Struct("GPT header", [
    ("signature", "8s"),          # b"EFI PART"
    ("revision", "I"),            # 0x00010000
    ("header_size", "I"),         # 92 .. sector size; the CRC covers exactly this many bytes
    ("header_crc32", "I"),        # computed with this field zeroed
    ("reserved", "I"),
    ("my_lba", "Q"),              # 1 for the primary, the last LBA for the backup
    ("alternate_lba", "Q"),       # the other copy's header
    ("first_usable_lba", "Q"),
    ("last_usable_lba", "Q"),
    ("disk_guid", "16s"),         # mixed-endian (uuid bytes_le)
    ("entries_lba", "Q"),         # 2 for the primary, last - entry sectors for the backup
    ("num_entries", "I"),
    ("entry_size", "I"),          # 128 * 2^n
    ("entries_crc32", "I"),       # over num_entries * entry_size bytes, same in both copies
])

GPT_ENTRY = Struct("GPT partition entry", [
    ("type_guid", "16s"),         # all zero: unused entry
    ("unique_guid", "16s"),
    ("first_lba", "Q"),
    ("last_lba", "Q"),            # inclusive
    ("attributes", "Q"),
    ("name", "72s"),              # 36 UTF-16LE code units, NUL-padded
])

SIGNATURE = b"EFI PART"
REVISION = 0x00010000
HEADER_SIZE = GPT_HEADER.size  # 92
ENTRY_SIZE = GPT_ENTRY.size  # 128
NAME_UNITS = GPT_ENTRY.offsets["name"][1] // 2
CRC_FIELD = GPT_HEADER.offsets["header_crc32"]
DEFAULT_ENTRIES = 128

# The entry array is read into memory whole, and num_entries * entry_size comes from the disk (up to
# 2^64 bytes). Every real tool writes 128 x 128 = 16 KiB; 1 MiB still allows 8192 entries of 128 bytes
# (or sgdisk's largest --resize-table) while keeping a hostile header from driving a huge read.
MAX_ENTRY_ARRAY = 1 << 20


def guid_str(raw: bytes) -> str:
    """On-disk (mixed-endian) GUID bytes as a lowercase dashed string."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def guid_bytes(text: str, what: str) -> bytes:
    """A GUID string as the 16 on-disk bytes; a malformed string is the caller's `UsageError`."""
    try:
        return uuid.UUID(text).bytes_le
    except (ValueError, TypeError, AttributeError):
        raise UsageError(detail=f"{what}: {text!r} is not a GUID") from None


def valid_entry_size(size: int) -> bool:
    """UEFI: the entry size is 128 multiplied by a power of two."""
    return size >= ENTRY_SIZE and size & (size - 1) == 0
