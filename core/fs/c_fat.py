"""FAT12/16/32 on-disk declarations: boot sector (BPB), the FAT32 and FAT12/16 extended BPBs, directory entries.

Behaviour (type by cluster count, used clusters, path lookup) lives in `core.fs.fat`; this module only
says where the bytes are (Microsoft's FAT specification, fatgen103).
"""

from __future__ import annotations

from ..structs import Struct

FAT_BPB = Struct("FAT boot sector", [
    ("jump", "3s"), ("oem_id", "8s"), ("bytes_per_sector", "H"), ("sectors_per_cluster", "B"),
    ("reserved_sectors", "H"), ("fats", "B"), ("root_entries", "H"), ("total16", "H"), ("media", "B"),
    ("fat_size16", "H"), ("sectors_per_track", "H"), ("heads", "H"), ("hidden_sectors", "I"),
    ("total32", "I"),
])
FAT32_EXT = Struct("FAT32 extended BPB", [
    ("fat_size32", "I"), ("ext_flags", "H"), ("version", "H"), ("root_cluster", "I"), ("fsinfo", "H"),
    ("backup_boot", "H"), ("reserved", "12s"), ("drive", "B"), ("reserved1", "B"), ("boot_sig", "B"),
    ("volume_id", "I"), ("label", "11s"), ("fs_type", "8s"),
])
FAT16_EXT = Struct("FAT12/16 extended BPB", [
    ("drive", "B"), ("reserved1", "B"), ("boot_sig", "B"), ("volume_id", "I"), ("label", "11s"),
    ("fs_type", "8s"),
])
DIR_ENTRY = Struct("FAT directory entry", [
    ("name", "11s"), ("attr", "B"), ("nt_res", "B"), ("ctime_tenth", "B"), ("ctime", "H"), ("cdate", "H"),
    ("adate", "H"), ("cluster_hi", "H"), ("wtime", "H"), ("wdate", "H"), ("cluster_lo", "H"), ("size", "I"),
])
ATTR_LFN = 0x0F
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
