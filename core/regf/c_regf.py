"""Registry hive (regf) on-disk declarations: field tables, constants, the base-block checksum.

Only *where the bytes are* (BOOT.md §9.1/§9.2, after msuhanov's and libyal's format
specifications); behaviour lives in `hive` (reading), `cells` (record decoding), `alloc` and `writer`.
All cell offsets are relative to the start of the hive bins data, i.e. file offset `BASE_BLOCK_SIZE`.
"""

from __future__ import annotations

import struct

from ..structs import Struct

BASE_BLOCK_SIZE = 4096
HBIN_ALIGN = 4096  # hbin sizes and the hive bins data size are multiples of this
CHECKSUM_SPAN = 508  # the checksum covers the 127 uint32 before it

BASE_BLOCK = Struct("regf base block", [
    ("signature", "4s"),       # b"regf"
    ("seq1", "I"),             # primary sequence number: bumped when a write starts
    ("seq2", "I"),             # secondary: set equal to seq1 when the write completed
    ("timestamp", "Q"),        # FILETIME of the last write
    ("major", "I"),            # 1
    ("minor", "I"),            # 3 (BCD, NTUSER), 5 (SYSTEM/SOFTWARE since XP), 6
    ("file_type", "I"),        # 0 = primary file; 1/2/6 = transaction-log variants
    ("file_format", "I"),      # 1 = direct memory load
    ("root_cell", "I"),        # offset of the root nk
    ("hbins_size", "I"),       # hive bins data size, multiple of 4096
    ("clustering", "I"),       # 1
    ("file_name", "64s"),      # UTF-16LE, debug only
    ("reserved", "396s"),
    ("checksum", "I"),         # XOR of the uint32 at 0..507, with Windows' edge cases
])

HBIN_HEADER = Struct("hbin header", [
    ("signature", "4s"),       # b"hbin"
    ("offset", "I"),           # offset of this bin, relative to the hive bins data
    ("size", "I"),             # multiple of 4096
    ("reserved", "8s"),
    ("timestamp", "Q"),        # meaningful in the first bin only
    ("spare", "I"),
])

NK = Struct("nk record", [
    ("signature", "2s"),       # b"nk"
    ("flags", "H"),
    ("timestamp", "Q"),
    ("access_bits", "I"),
    ("parent", "I"),
    ("subkey_count", "I"),
    ("volatile_subkey_count", "I"),
    ("subkey_list", "I"),
    ("volatile_subkey_list", "I"),
    ("value_count", "I"),
    ("value_list", "I"),
    ("security", "I"),
    ("class_offset", "I"),
    ("max_subkey_name", "I"),  # low 16 bits: bytes of the longest subkey name as UTF-16; high bits: flags
    ("max_class_len", "I"),
    ("max_value_name", "I"),   # bytes, names counted as UTF-16
    ("max_value_data", "I"),
    ("workvar", "I"),
    ("name_length", "H"),
    ("class_length", "H"),
])

VK = Struct("vk record", [
    ("signature", "2s"),       # b"vk"
    ("name_length", "H"),      # 0 = the default value
    ("data_size", "I"),        # bit 31 set: <= 4 bytes stored in data_offset itself
    ("data_offset", "I"),
    ("data_type", "I"),
    ("flags", "H"),            # 0x0001: name is stored compressed (Latin-1)
    ("spare", "H"),
])

SK = Struct("sk record", [
    ("signature", "2s"),       # b"sk"
    ("reserved", "H"),
    ("flink", "I"),            # sk cells form a doubly linked ring
    ("blink", "I"),
    ("refcount", "I"),
    ("descriptor_size", "I"),
])

DB = Struct("db record", [
    ("signature", "2s"),       # b"db"
    ("segment_count", "H"),
    ("segment_list", "I"),
])

LIST_HEADER = Struct("subkey list header", [
    ("signature", "2s"),       # b"lf" b"lh" b"li" b"ri"
    ("count", "H"),
])

NO_CELL = 0xFFFFFFFF

# nk flags
KEY_VOLATILE = 0x0001
KEY_HIVE_EXIT = 0x0002
KEY_HIVE_ENTRY = 0x0004     # the root key
KEY_NO_DELETE = 0x0008
KEY_SYM_LINK = 0x0010
KEY_COMP_NAME = 0x0020      # name stored as Latin-1 bytes instead of UTF-16LE

VALUE_COMP_NAME = 0x0001
VK_DATA_INLINE = 0x80000000

# Windows stores value data larger than this in "db" big-data records (hive version 1.4 and later);
# every segment holds at most this many bytes.
BIG_DATA_SEGMENT = 16344
BIG_DATA_MIN_MINOR = 4

CELL_ALIGN = 8
MIN_CELL = 8

_U32S = struct.Struct("<127I")


def base_block_checksum(block: bytes | bytearray | memoryview) -> int:
    """XOR of the first 127 uint32 of the base block, with Windows' two edge cases.

    Windows never stores 0 or 0xFFFFFFFF (python-registry PR #60): a XOR of 0xFFFFFFFF is stored as
    0xFFFFFFFE and a XOR of 0 as 1.
    """
    x = 0
    for word in _U32S.unpack_from(block, 0):
        x ^= word
    if x == 0xFFFFFFFF:
        return 0xFFFFFFFE
    if x == 0:
        return 1
    return x


# --- security descriptors (the payload of sk cells): Windows' self-relative SECURITY_DESCRIPTOR -------

SECURITY_DESCRIPTOR = Struct("self-relative security descriptor", [
    ("revision", "B"),         # 1
    ("sbz1", "B"),
    ("control", "H"),          # SE_* flags below
    ("owner", "I"),            # offsets from the descriptor start; 0 = absent
    ("group", "I"),
    ("sacl", "I"),
    ("dacl", "I"),
])

ACL_HEADER = Struct("ACL header", [
    ("revision", "B"),         # 2
    ("sbz1", "B"),
    ("size", "H"),             # header and every ACE
    ("ace_count", "H"),
    ("sbz2", "H"),
])

ACE_HEADER = Struct("access-allowed ACE", [
    ("type", "B"),             # 0 = ACCESS_ALLOWED_ACE_TYPE
    ("flags", "B"),            # 0x02 = CONTAINER_INHERIT_ACE
    ("size", "H"),             # header, mask and SID
    ("mask", "I"),             # access mask
])

SID_HEADER = Struct("SID header", [
    ("revision", "B"),         # 1
    ("sub_count", "B"),        # number of uint32 sub-authorities that follow
    ("authority", "6s"),       # identifier authority, big-endian
])

SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000


# --- transaction logs (BOOT.md §9.4, after msuhanov's specification "Format of transaction log files") --

# A log starts with a copy of the first 512 bytes of the base block (file type 1 or 6), whatever the
# disk's sector size (the clustering factor is 1 since Windows 8; Vista/7 logs of 512-byte disks too).
LOG_BASE_BLOCK_SIZE = 512
LOG_SECTOR = 512             # old-format dirty pages and new-format log entries are aligned to this
FILE_TYPE_PRIMARY = 0
FILE_TYPE_LOG_OLD = 1        # Vista/7 (and XP): base block, dirty vector, dirty pages
FILE_TYPE_LOG_VERY_OLD = 2   # Windows 2000's old-format logs
FILE_TYPE_LOG_NEW = 6        # Windows 8.1 and later: base block, HvLE log entries
BASE_BLOCK_FLAGS_OFFSET = 144  # hive flags (bit 0: KTM locked the hive), restored from each log entry
LOG_ENTRY_FLAG_MASK = 0x1      # the only flag bit a log entry carries

DIRTY_VECTOR_SIGNATURE = b"DIRT"   # at offset 512 of an old-format log; a bitmap follows
DIRTY_PAGE = 512                   # one bit of the dirty vector covers this many bytes of hive bins

LOG_ENTRY = Struct("HvLE log entry header", [
    ("signature", "4s"),       # b"HvLE"
    ("size", "I"),             # whole entry, a multiple of 512
    ("flags", "I"),            # bit 0 mirrors the base block's flags bit 0
    ("sequence", "I"),         # the hive's sequence number once this entry is applied
    ("hbins_size", "I"),       # hive bins data size at this entry, a multiple of 4096
    ("page_count", "I"),       # dirty page references that follow
    ("hash1", "Q"),            # Marvin32 of bytes 40..size
    ("hash2", "Q"),            # Marvin32 of bytes 0..32 (hash1 included)
])

DIRTY_PAGE_REF = Struct("HvLE dirty page reference", [
    ("offset", "I"),           # in the hive bins data
    ("size", "I"),             # bytes; the pages follow the references in this order, unpadded
])

MARVIN32_LOG_SEED = 0x82EF4D887A4E55C5
