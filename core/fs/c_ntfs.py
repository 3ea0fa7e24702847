"""NTFS on-disk declarations: boot sector, MFT record and attribute headers, index structures, constants.

Behaviour lives in `ntfs_boot` (geometry), `ntfs_mft` (records, runlists), `ntfs_volume` (streams) and
`ntfs_lookup` (directory indexes); this module only says where the bytes are. Layouts as ntfs-3g's
``include/ntfs-3g/layout.h`` declares them (BOOT.md §5).
"""

from __future__ import annotations

from ..structs import Struct

NTFS_OEM_ID = b"NTFS    "
BOOT_SECTOR_SIZE = 512  # the BPB lives in the first 512 bytes whatever the sector size

NTFS_BOOT = Struct("NTFS boot sector", [
    ("jump", "3s"),
    ("oem_id", "8s"),
    ("bytes_per_sector", "H"),        # 0x0B
    ("sectors_per_cluster", "B"),     # 0x0D
    ("reserved_sectors", "H"),        # 0x0E, 0 on NTFS
    ("fats", "B"),                    # 0x10, 0 on NTFS
    ("root_entries", "H"),            # 0x11, 0
    ("sectors16", "H"),               # 0x13, 0
    ("media_type", "B"),              # 0x15
    ("sectors_per_fat", "H"),         # 0x16, 0
    ("sectors_per_track", "H"),       # 0x18
    ("heads", "H"),                   # 0x1A
    ("hidden_sectors", "I"),          # 0x1C, absolute start LBA
    ("large_sectors", "I"),           # 0x20, 0
    ("drive_flags", "4s"),            # 0x24
    ("total_sectors", "q"),           # 0x28, volume sectors (the backup boot sector is the next one)
    ("mft_lcn", "q"),                 # 0x30
    ("mftmirr_lcn", "q"),             # 0x38
    ("clusters_per_mft_record", "b"),  # 0x40, signed: negative n means 2**-n bytes
    ("reserved0", "3s"),
    ("clusters_per_index_block", "b"),  # 0x44, same encoding
    ("reserved1", "3s"),
    ("serial", "Q"),                  # 0x48
    ("checksum", "I"),                # 0x50
    ("bootstrap", "426s"),            # 0x54
    ("end_marker", "H"),              # 0x1FE, 0xAA55
])

FIXUP_STRIDE = 512  # NTFS_BLOCK_SIZE: fixups protect every 512 bytes whatever the sector size

AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_VOLUME_NAME = 0x60
AT_VOLUME_INFORMATION = 0x70
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_BITMAP = 0xB0
AT_END = 0xFFFFFFFF

MFT_RECORD_IN_USE = 0x0001
MFT_RECORD_IS_DIRECTORY = 0x0002

MFT_HEADER = Struct("MFT record header", [
    ("magic", "4s"), ("usa_ofs", "H"), ("usa_count", "H"), ("lsn", "Q"), ("sequence", "H"),
    ("link_count", "H"), ("attrs_offset", "H"), ("flags", "H"), ("bytes_in_use", "I"),
    ("bytes_allocated", "I"), ("base_ref", "Q"), ("next_instance", "H"),
])
ATTR_HEADER = Struct("attribute header", [
    ("type", "I"), ("length", "I"), ("non_resident", "B"), ("name_length", "B"), ("name_offset", "H"),
    ("flags", "H"), ("instance", "H"),
])
RESIDENT = Struct("resident attribute", [("value_length", "I"), ("value_offset", "H"), ("rflags", "B"),
                                         ("pad", "B")])
NON_RESIDENT = Struct("non-resident attribute", [
    ("lowest_vcn", "q"), ("highest_vcn", "q"), ("mapping_pairs_offset", "H"), ("compression_unit", "B"),
    ("pad", "5s"), ("allocated_size", "q"), ("data_size", "q"), ("initialized_size", "q"),
])
FILE_NAME = Struct("$FILE_NAME", [
    ("parent_ref", "Q"), ("ctime", "Q"), ("mtime", "Q"), ("mft_time", "Q"), ("atime", "Q"),
    ("allocated_size", "q"), ("data_size", "q"), ("flags", "I"), ("reparse", "I"),
    ("name_length", "B"), ("namespace", "B"),
])
ATTR_LIST_ENTRY = Struct("$ATTRIBUTE_LIST entry", [
    ("type", "I"), ("length", "H"), ("name_length", "B"), ("name_offset", "B"), ("lowest_vcn", "q"),
    ("mft_ref", "Q"), ("instance", "H"),
])

REF_MASK = (1 << 48) - 1  # a file reference = 48-bit record number + 16-bit sequence number

ROOT_DIRECTORY = 5
INDEX_NAME = "$I30"

INDEX_ROOT = Struct("$INDEX_ROOT", [("type", "I"), ("collation", "I"), ("index_block_size", "I"),
                                    ("clusters_per_index_block", "B"), ("pad", "3s")])
INDEX_HEADER = Struct("index header", [("entries_offset", "I"), ("index_length", "I"),
                                       ("allocated_size", "I"), ("flags", "B"), ("pad", "3s")])
INDEX_ENTRY = Struct("index entry", [("ref", "Q"), ("length", "H"), ("key_length", "H"), ("flags", "H"),
                                     ("pad", "H")])
INDX_HEADER = Struct("INDX block", [("magic", "4s"), ("usa_ofs", "H"), ("usa_count", "H"), ("lsn", "Q"),
                                    ("vcn", "q")])
ENTRY_NODE = 0x01  # the entry has a sub-node (its VCN is the entry's last 8 bytes)
ENTRY_END = 0x02   # last entry of the node (carries no key)
