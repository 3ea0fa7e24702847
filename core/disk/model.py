"""Model objects shared by the disk parsers and the engine (not on-disk structures).

The parsers in this package (``mbr``, ``gpt``, ``ntfs_*``, ``fat``) turn bytes into these objects; the
engine only ever sees these. All offsets and sizes are in bytes, relative to the start of the disk for
partitions and to the start of the partition for filesystem extents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

Extent = tuple[int, int]  # (offset, length) in bytes

# Roles of the table's own metadata areas, as recorded in image manifests.
MetaRole = Literal["mbr", "ebr", "gpt-primary", "gpt-backup"]


@dataclass(frozen=True)
class Partition:
    """One partition as the table describes it.

    ``number`` follows Linux numbering: MBR primaries 1-4, logical partitions from 5 in EBR-chain
    order; GPT entry index + 1 (unused entries skipped, numbers not compacted).
    """

    number: int
    start: int
    size: int
    type_id: str  # MBR: "0x07" (two hex digits, lowercase); GPT: type GUID, lowercase, dashed
    bootable: bool = False  # MBR active flag (0x80)
    guid: str | None = None  # GPT unique partition GUID, lowercase, dashed
    name: str = ""  # GPT partition name
    attributes: int = 0  # GPT attribute bits
    logical: bool = False  # MBR logical partition inside the extended one

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class MetaArea:
    """Bytes the partition table itself occupies (must be stored and restored with the table)."""

    offset: int
    length: int
    role: MetaRole


@dataclass(frozen=True)
class PartitionTable:
    """A parsed partition table. ``disk_id``: MBR signature as "0x1234abcd" or the GPT disk GUID."""

    scheme: Literal["mbr", "gpt"]
    sector_size: int
    disk_size: int
    disk_id: str
    partitions: tuple[Partition, ...]
    meta: tuple[MetaArea, ...]
    # MBR with an extended partition: the container (type 0x05/0x0f/0x85) as number 1-4, not listed
    # in ``partitions`` (it holds no filesystem of its own).
    extended: Partition | None = None
    warnings: tuple[str, ...] = ()

    def by_number(self, number: int) -> Partition | None:
        for p in self.partitions:
            if p.number == number:
                return p
        return None


@dataclass
class FsUsage:
    """What a filesystem uses of its partition, for imaging.

    ``used`` lists the byte extents (relative to the partition start, sorted, non-overlapping,
    merged) that must be stored. ``zeroed`` lists extents whose content is deliberately not stored
    and must be written as zeros on restore (pagefile.sys / hiberfil.sys data runs). ``used`` and
    ``zeroed`` never overlap.
    """

    fs: Literal["ntfs", "fat12", "fat16", "fat32", "bitlocker", "raw"]
    cluster_size: int
    used: list[Extent]
    zeroed: list[Extent] = field(default_factory=list)
    label: str = ""
    serial: str = ""  # NTFS volume serial (hex) / FAT volume id
    warnings: list[str] = field(default_factory=list)
    dirty: bool = False
    hibernated: bool = False
    has_windows: bool = False  # \Windows\System32\winload.exe exists
    has_bootmgr: bool = False  # \bootmgr + \Boot\BCD (BIOS) or \EFI\Microsoft\Boot\BCD (ESP)

    @property
    def used_bytes(self) -> int:
        return sum(length for _, length in self.used)


def merge_extents(extents: list[Extent]) -> list[Extent]:
    """Sort and merge touching/overlapping extents; drops empty ones."""
    out: list[Extent] = []
    for off, length in sorted(e for e in extents if e[1] > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            last_off, last_len = out[-1]
            out[-1] = (last_off, max(last_len, off + length - last_off))
        else:
            out.append((off, length))
    return out


def subtract_extents(extents: list[Extent], remove: list[Extent]) -> list[Extent]:
    """``extents`` minus ``remove`` (both merged lists); result merged."""
    out: list[Extent] = []
    rem = merge_extents(remove)
    j = 0
    for off, length in merge_extents(extents):
        cur, end = off, off + length
        while j < len(rem) and rem[j][0] + rem[j][1] <= cur:
            j += 1
        k = j
        while k < len(rem) and rem[k][0] < end:
            r_off, r_len = rem[k]
            if r_off > cur:
                out.append((cur, r_off - cur))
            cur = max(cur, r_off + r_len)
            k += 1
        if cur < end:
            out.append((cur, end - cur))
    return out


def iter_pieces(extents: list[Extent], piece: int) -> Iterator[Extent]:
    """Split extents into pieces of at most ``piece`` bytes (for bounded reads)."""
    for off, length in extents:
        while length > 0:
            n = min(piece, length)
            yield off, n
            off += n
            length -= n
