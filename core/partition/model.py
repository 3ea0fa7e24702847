"""The partition table as the engine sees it (model objects, not on-disk structures).

`core.partition.mbr` and `core.partition.gpt` turn table sectors into these objects; the engine only
ever sees these. Offsets and sizes are in bytes from the start of the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
