"""Boot records a moved or cloned Windows needs: MBR boot code, active flag, disk signature, and the
hidden-sectors field of the NTFS / FAT boot sectors (BOOT.md §2, §5, §6, §7).

- MBR boot code (bytes 0-439) is written only where it is missing (all zero) or not a code we know:
  Windows' (SHA-256 of the English Windows 7 code, or the NT 6 fingerprints below) and syslinux's
  ``mbr.bin`` are kept as they are. New code is Debian's syslinux ``mbr.bin`` (first 440 bytes; the
  signature and the table are never touched by that write).
- The active flag (0x80) goes on the boot partition's entry and is cleared on the other entries.
- Hidden sectors (the BPB field `c_ntfs`/`c_fat` declare) = the partition's start LBA, in the boot sector *and* its backup (NTFS:
  the volume's last sector; FAT32: the sector the BPB names, usually 6).
- A BitLocker volume's boot sector is never touched: BitLocker measures it into the TPM and its
  metadata must stay byte-identical; the report says so.

`plan_boot_records` only reads; `apply_boot_records` performs the planned writes. `plan_hidden_sectors`
is the hidden-sectors part alone, for one partition: restore and clone use it after moving partitions.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..disk.device import Disk
from ..errors import FormatError
from ..fs.c_fat import FAT32_EXT, FAT_BPB
from ..fs.c_ntfs import NTFS_BOOT
from ..fs.fat import parse_fat_boot
from ..fs.ntfs_boot import parse_ntfs_boot
from ..io.reader import Reader
from ..partition.c_mbr import BOOT_CODE_SIZE, ENTRIES_OFFSET, MBR_SECTOR, decode_entries
from ..structs import Struct
from .layout import FAT_KINDS, DiskLayout

SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
# BOOT.md §2.3: SHA-256 of the 440 code bytes of the English Windows 7 MBR (ms-sys mbr_win7.h).
WIN7_MBR_SHA256 = "59019b8b59cffb325855cdc7716d38f8ce2112b9b027f2f8516992e2e686525b"
# Every Windows MBR since NT starts "xor ax,ax; mov ss,ax; mov sp,7C00h"; the NT 6 (Vista/7/8/10)
# code also compares EBX with 'TCPA' for the TPM measurement (BOOT.md §2.2 step 5), NT 5 carries its English
# "Invalid partition table" message. Localised Windows 7 codes differ only in the messages, so these
# fingerprints recognise them where the hash does not.
WINDOWS_PREFIX = bytes.fromhex("33c08ed0bc007c")
SIGNATURE_OFFSET = MBR_SECTOR.offsets["disk_signature"][0]
ENTRY_SIZE = 16
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class BootRecordChange:
    """One planned write: ``data`` at absolute disk byte ``offset``; ``where``/``old``/``new`` for people."""

    where: str
    old: str
    new: str
    offset: int
    data: bytes = field(repr=False)


@dataclass
class BootRecordPlan:
    changes: list[BootRecordChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def classify_mbr_code(code: bytes) -> str:
    """What the 440 bytes of boot code are: "empty", "Windows 7", "Windows (NT 6)", "Windows (NT 5)",
    "syslinux" or "unknown"."""
    code = bytes(code[:BOOT_CODE_SIZE])
    if code == bytes(len(code)):
        return "empty"
    if hashlib.sha256(code).hexdigest() == WIN7_MBR_SHA256:
        return "Windows 7"
    if code.startswith(WINDOWS_PREFIX) and b"TCPA" in code:
        return "Windows (NT 6)"
    if code.startswith(WINDOWS_PREFIX) and b"Invalid partition table" in code:
        return "Windows (NT 5)"
    if SYSLINUX_MBR.exists() and code == SYSLINUX_MBR.read_bytes()[:BOOT_CODE_SIZE]:
        return "syslinux"
    return "unknown"


def plan_boot_records(layout: DiskLayout, reader: Reader) -> BootRecordPlan:
    """Every boot-record write this disk needs (none when it is already right)."""
    plan = BootRecordPlan()
    if layout.scheme == "mbr":
        _plan_mbr(layout, reader, plan)
    else:
        plan.notes.append("GPT disk: UEFI boots the ESP, so the protective MBR's code and flags are left as they are")
    for s in layout.parts:
        if s.fs == "bitlocker":
            plan.problems.append(
                f"partition {s.number} is BitLocker-encrypted: its boot sector was not touched (BitLocker keeps "
                "its own metadata there and measures it into the TPM; after a move, have the recovery key at hand)")
        else:
            plan_hidden_sectors(reader, s.number, s.fs, s.start, s.part.size, layout.sector_size, plan)
    return plan


def plan_hidden_sectors(reader: Reader, number: int, fs: str, start: int, size: int, sector_size: int,
                        plan: BootRecordPlan) -> None:
    """The writes that make partition ``number`` (``size`` bytes at ``start``) record its start in its
    NTFS/FAT boot sector and that sector's backup; other filesystems need none."""
    if fs == "ntfs":
        _plan_ntfs(reader, number, start, size, sector_size, plan)
    elif fs in FAT_KINDS:
        _plan_fat(reader, number, start, size, sector_size, plan)


def _plan_mbr(layout: DiskLayout, reader: Reader, plan: BootRecordPlan) -> None:
    sector0 = reader.read(0, 512)
    if len(sector0) < 512:
        raise FormatError(what="MBR", detail="sector 0 is shorter than 512 bytes")
    if layout.signature != layout.old_signature and layout.signature is not None:
        plan.changes.append(BootRecordChange("MBR disk signature", f"0x{layout.old_signature or 0:08x}",
                                             f"0x{layout.signature:08x}", SIGNATURE_OFFSET,
                                             _U32.pack(layout.signature)))
    kind = classify_mbr_code(sector0[:BOOT_CODE_SIZE])
    if layout.boot is None and not layout.windows:
        # Not a Windows disk (or not one we can see): its boot code, GRUB's say, is not ours to replace.
        plan.notes.append(f"MBR boot code: {kind}, kept (no Windows and no boot partition found)")
    elif kind in ("empty", "unknown"):
        if SYSLINUX_MBR.exists():
            code = SYSLINUX_MBR.read_bytes()[:BOOT_CODE_SIZE]
            plan.changes.append(BootRecordChange("MBR boot code", f"{kind} code", "syslinux mbr.bin", 0, code))
        else:
            plan.problems.append(f"MBR boot code is {kind} and {SYSLINUX_MBR} is absent (install syslinux-common)")
    else:
        plan.notes.append(f"MBR boot code: {kind}, kept")
    boot = layout.boot
    if boot is None:
        plan.problems.append("no boot partition (bootmgr + \\Boot\\BCD) found: active flag left as it is")
        return
    if boot.part.logical:
        plan.problems.append(f"boot partition {boot.number} is a logical partition, which the BIOS cannot boot; "
                             "active flag left as it is")
        return
    for e in decode_entries(sector0, "MBR"):
        if not e.used:
            continue
        want = 0x80 if e.slot + 1 == boot.number else 0x00
        if e.status != want:
            off = ENTRIES_OFFSET + e.slot * ENTRY_SIZE
            plan.changes.append(BootRecordChange(f"MBR entry {e.slot + 1} status", f"0x{e.status:02x}",
                                                 f"0x{want:02x}", off, bytes([want])))


def _hidden(number: int, start: int, sector_size: int, plan: BootRecordPlan) -> int | None:
    lba = start // sector_size
    if lba > 0xFFFFFFFF:
        plan.problems.append(f"partition {number} starts at LBA {lba}, beyond the 32-bit hidden-sectors field")
        return None
    return lba


def _patch(plan: BootRecordPlan, where: str, bpb: Struct, sector: bytes, offset: int, want: int) -> None:
    at, codec = bpb.field("hidden_sectors")
    old = codec.unpack_from(sector, at)[0]
    if old != want:
        plan.changes.append(BootRecordChange(where, str(old), str(want), offset + at, codec.pack(want)))


def _plan_ntfs(reader: Reader, number: int, start: int, size: int, sector_size: int,
               plan: BootRecordPlan) -> None:
    sector = reader.read(start, 512)
    try:
        boot = parse_ntfs_boot(sector, size)
    except FormatError as e:
        plan.problems.append(f"partition {number}: NTFS boot sector unusable ({e.message}); left as it is")
        return
    if boot.bytes_per_sector != sector_size:
        plan.problems.append(f"partition {number}: NTFS has {boot.bytes_per_sector}-byte sectors on a disk with "
                             f"{sector_size}-byte sectors; Windows cannot boot from it")
    want = _hidden(number, start, sector_size, plan)
    if want is None:
        return
    _patch(plan, f"partition {number} NTFS boot sector hidden sectors", NTFS_BOOT, sector, start, want)
    # Windows' format puts the backup right after the volume's last sector, which is the partition's
    # last sector; ntfsresize rounds the volume down to whole clusters and still writes the backup in
    # the partition's last sector. Look in both places.
    for rel in dict.fromkeys((boot.backup_boot_offset, size - 512)):
        backup = reader.read(start + rel, 512) if 0 < rel and rel + 512 <= size else b""
        if len(backup) == 512 and backup[3:11] == sector[3:11] and backup[0x1FE:0x200] == b"\x55\xaa":
            _patch(plan, f"partition {number} NTFS backup boot sector hidden sectors", NTFS_BOOT, backup,
                   start + rel, want)
            break
    else:
        plan.problems.append(f"partition {number}: no NTFS backup boot sector at the volume's last sector "
                             f"(byte {boot.backup_boot_offset}) nor at the partition's; left as it is")


def _plan_fat(reader: Reader, number: int, start: int, size: int, sector_size: int,
              plan: BootRecordPlan) -> None:
    sector = reader.read(start, 512)
    try:
        geo = parse_fat_boot(sector, size)
    except FormatError as e:
        plan.problems.append(f"partition {number}: FAT boot sector unusable ({e.message}); left as it is")
        return
    want = _hidden(number, start, sector_size, plan)
    if want is None:
        return
    _patch(plan, f"partition {number} {geo.kind.upper()} boot sector hidden sectors", FAT_BPB, sector, start, want)
    if geo.kind != "fat32":
        return
    backup_sector = FAT32_EXT.parse(sector, 0x24, "FAT32 extended BPB")["backup_boot"]
    if backup_sector in (0, 0xFFFF) or backup_sector >= geo.reserved_sectors:
        return  # no backup boot sector on this volume
    off = start + backup_sector * geo.bytes_per_sector
    backup = reader.read(off, 512)
    if len(backup) == 512 and backup[0x52:0x5A] == sector[0x52:0x5A] and backup[0x1FE:0x200] == b"\x55\xaa":
        _patch(plan, f"partition {number} FAT32 backup boot sector hidden sectors", FAT_BPB, backup, off, want)


def apply_boot_records(disk: Disk, plan: BootRecordPlan) -> None:
    """Write the planned changes and make them durable."""
    for c in plan.changes:
        disk.pwrite(c.offset, c.data)
    if plan.changes:
        disk.sync()
