"""MBR/EBR on-disk declarations: sector and entry field tables, constants, entry encode/decode.

Behaviour (parsing the chain, rewriting, building tables) is in `core.partition.mbr`; this module only says
where the bytes are (BOOT.md §2.1), so the tables can be checked against BOOT.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..structs import Struct

MBR_SECTOR = Struct("MBR", [
    ("boot_code", "440s"),
    ("disk_signature", "I"),
    ("reserved", "H"),
    ("entries", "64s"),
    ("boot_signature", "H"),
])

EBR_SECTOR = Struct("EBR", [
    ("unused", "446s"),  # normally zero; some tools leave boot code here, kept byte-identical on rewrite
    ("entries", "64s"),
    ("boot_signature", "H"),
])

MBR_ENTRY = Struct("MBR partition entry", [
    ("status", "B"),       # 0x80 active, 0x00 inactive; anything else stops the Windows MBR code
    ("chs_first", "3s"),
    ("type", "B"),
    ("chs_last", "3s"),
    ("lba_start", "I"),    # absolute (MBR), relative to the EBR (logical) or to the extended start (link)
    ("num_sectors", "I"),
])

ENTRIES_OFFSET = MBR_SECTOR.offsets["entries"][0]  # 0x1BE, identical in MBR and EBR
BOOT_SIGNATURE_OFFSET = MBR_SECTOR.offsets["boot_signature"][0]  # 0x1FE
BOOT_SIGNATURE = 0xAA55
BOOT_CODE_SIZE = MBR_SECTOR.offsets["boot_code"][1]
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
GPT_PROTECTIVE_TYPE = 0xEE
LINK_TYPE = 0x05  # what fdisk/sfdisk and Windows write for EBR links, whatever the container type

# Each EBR costs one sector read and one model object; a hostile chain can be arbitrarily long (or loop,
# caught separately). Linux stops at its per-disk partition limit and after 100 EBRs without a logical
# partition; Windows' Disk Management creates far fewer. 128 EBRs is more than any real disk has.
MAX_EBRS = 128

# MBR fields are 32-bit sector counts: nothing beyond 2^32 sectors is addressable.
MAX_LBA = 0xFFFFFFFF

HEADS, SECTORS_PER_TRACK, MAX_CYLINDER = 255, 63, 1023


@dataclass(frozen=True)
class Entry:
    """One decoded 16-byte entry (not the model object: LBAs are still as stored)."""

    slot: int  # 0-3
    status: int
    type: int
    lba_start: int
    num_sectors: int
    raw: bytes

    @property
    def used(self) -> bool:
        # Type 0 means unused to Windows, size 0 to Linux: either makes the slot empty.
        return self.type != 0 and self.num_sectors != 0


def decode_entries(sector: bytes | bytearray, what: str) -> list[Entry]:
    """The four entries at 0x1BE of an MBR or EBR sector."""
    out = []
    for slot in range(4):
        off = ENTRIES_OFFSET + slot * MBR_ENTRY.size
        f = MBR_ENTRY.parse(bytes(sector[off:off + MBR_ENTRY.size]), what=what)
        out.append(Entry(slot, f["status"], f["type"], f["lba_start"], f["num_sectors"],
                         bytes(sector[off:off + MBR_ENTRY.size])))
    return out


def chs(lba: int) -> bytes:
    """CHS triple for ``lba`` with the 255/63 geometry fdisk and Windows use; saturates to FE FF FF."""
    cyl, rest = divmod(lba, HEADS * SECTORS_PER_TRACK)
    head, sec = divmod(rest, SECTORS_PER_TRACK)
    if cyl > MAX_CYLINDER:
        cyl, head, sec = MAX_CYLINDER, HEADS - 1, SECTORS_PER_TRACK - 1
    return bytes([head, (sec + 1) | ((cyl >> 8) << 6), cyl & 0xFF])


def build_entry(status: int, type_: int, lba_start: int, num_sectors: int, chs_base: int = 0) -> bytes:
    """A 16-byte entry; ``chs_base`` is added to the (relative) start to get the absolute CHS LBAs."""
    first = chs_base + lba_start
    last = first + num_sectors - 1
    return MBR_ENTRY.build(status=status, chs_first=chs(first), type=type_, chs_last=chs(last),
                           lba_start=lba_start, num_sectors=num_sectors)
