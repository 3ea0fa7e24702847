"""Backup planning: from a source disk to the list of regions to read, and how to treat each.

Region kinds:
- ``used``: bytes a filesystem uses (NTFS $Bitmap, FAT table): stored as they are.
- ``raw``: a partition we cannot read as a filesystem (MSR, BitLocker, unknown, or any partition with
  ``--sector-by-sector``): every byte is read; all-zero blocks become zero extents, the rest is stored.
- ``gap``: disk areas outside every partition (partition tables, post-MBR gap, EBRs, unpartitioned
  space): every byte is read and non-zero blocks are stored; zero blocks are not recorded.
Nothing is ever written to the source.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import blake3

from ..errors import FormatError, SectorBySectorWarning, located
from ..extents import Extent, Runs, merge_extents
from ..fs import probe as fsmod
from ..fs.model import FsUsage
from ..io.reader import Reader, WindowReader
from ..partition.detect import read_partition_table
from ..format.image_meta import ImageTable, PartitionEntry
from ..partition.model import Partition, PartitionTable
from ..windows.roles import Role, role_of, select_partitions

RegionKind = Literal["used", "raw", "gap"]


@dataclass(slots=True)
class Region:
    """A run of disk bytes to read."""

    start: int
    length: int
    kind: RegionKind


class Regions:
    """The plan's regions in disk order, made again on each pass from one entry per partition or gap.

    A used region per run of each filesystem would be a Python object per piece of used space
    (millions on a large, fragmented volume; measured ~260 bytes a run with the run itself), so memory
    would follow the fragmentation. The runs stay packed in their `FsUsage` (`core.extents.Runs`) and
    the regions are yielded from them on demand.
    """

    def __init__(self) -> None:
        self._spans: list[tuple[int, int, RegionKind, Sequence[Extent] | None]] = []  # start, size, kind, runs

    def add(self, start: int, size: int, kind: RegionKind, runs: Sequence[Extent] | None = None) -> None:
        """A partition read as ``kind`` (``runs``: its used runs, relative to ``start``) or a gap."""
        self._spans.append((start, size, kind, runs))
        self._spans.sort(key=lambda s: s[0])  # partitions never overlap (the table readers refuse it)

    def __iter__(self) -> Iterator[Region]:
        for start, size, kind, runs in self._spans:
            if runs is None:
                if size > 0:
                    yield Region(start, size, kind)
            else:
                for off, n in runs:
                    yield Region(start + off, n, kind)

    def bytes_of(self, kind: RegionKind | None = None) -> int:
        """Bytes to read (of one kind), without a pass over the runs."""
        total = 0
        for _, size, k, runs in self._spans:
            if kind is None or k == kind:
                total += size if runs is None else (runs.total if isinstance(runs, Runs)
                                                    else sum(n for _, n in runs))
        return total


@dataclass
class PartPlan:
    number: int
    role: Role
    included: bool
    usage: FsUsage | None


@dataclass
class BackupPlan:
    table: PartitionTable | None
    parts: list[PartPlan]
    regions: Regions
    zeroed: list[Extent]  # disk-absolute extents restored as zeros (pagefile/hiberfil contents)
    warnings: list[str] = field(default_factory=list)  # notes, and Warning_s that carry their exit code

    def image_table(self) -> ImageTable | None:
        """The table as the image records it: each partition with what the backup found in it."""
        if self.table is None:
            return None
        t = self.table
        usage = {p.number: p for p in self.parts}

        def entry(p: Partition) -> PartitionEntry:
            pp = usage.get(p.number)
            u = pp.usage if pp else None
            return PartitionEntry(partition=p, included=bool(pp and pp.included),
                                  role=pp.role if pp else "other", fs=u.fs if u else None,
                                  label=u.label if u else "", used_bytes=u.used_bytes if u else None)
        return ImageTable(scheme=t.scheme, sector_size=t.sector_size, disk_size=t.disk_size,
                          disk_id=t.disk_id, partitions=tuple(entry(p) for p in t.partitions),
                          extended=entry(t.extended) if t.extended else None, areas=t.meta)


def table_fingerprint(reader: Reader, table: PartitionTable | None) -> str:
    """Digest of the partition table's own bytes: an incremental refuses a disk whose layout changed."""
    h = blake3.blake3()
    if table is not None:
        for m in table.meta:
            h.update(reader.read(m.offset, m.length))
    return h.hexdigest()


def plan_backup(reader: Reader, sector_size: int, partitions: str = "all",
                sector_by_sector: bool = False) -> BackupPlan:
    """Read the table and each filesystem's usage; decide what to store."""
    warnings: list[str] = []
    try:
        table: PartitionTable | None = read_partition_table(reader, sector_size)
    except FormatError as e:
        if "no partition table" not in e.message:
            raise
        table = None
    if table is None:
        # A disk without a partition table (or a bare volume image): one region over everything.
        usage = None if sector_by_sector else _probe(reader, "", warnings, "disk")
        whole = Regions()
        _add_regions(whole, 0, usage, reader.size)
        return BackupPlan(None, [], whole, list(usage.zeroed if usage else []),
                          warnings + (usage.warnings if usage else []))
    warnings.extend(table.warnings)
    usages: dict[int, FsUsage | None] = {}
    for p in table.partitions:
        usages[p.number] = None if sector_by_sector else _probe(WindowReader(reader, p.start, p.size), p.type_id,
                                                                warnings, f"partition {p.number}")
    roles = {p.number: role_of(p, usages[p.number]) for p in table.partitions}
    chosen = select_partitions(table, roles, partitions)
    parts = [PartPlan(p.number, roles[p.number], p.number in chosen, usages[p.number]) for p in table.partitions]
    regions = Regions()
    zeroed: list[Extent] = []
    for p in table.partitions:
        if p.number not in chosen:
            continue
        u = usages[p.number]
        _add_regions(regions, p.start, u, p.size)
        if u is not None:
            zeroed.extend((p.start + o, n) for o, n in u.zeroed)
            warnings.extend(located(w, f"partition {p.number}") for w in u.warnings)
    # Gaps: everything outside all partitions (chosen or not), so tables, EBRs and boot code come along.
    occupied = merge_extents([(p.start, p.size) for p in table.partitions])
    pos = 0
    for off, length in occupied + [(reader.size, 0)]:
        if off > pos:
            regions.add(pos, off - pos, "gap")
        pos = max(pos, off + length)
    return BackupPlan(table, parts, regions, merge_extents(zeroed), warnings)


def _probe(reader: Reader, type_id: str, warnings: list[str], where: str) -> FsUsage | None:
    try:
        return fsmod.probe_usage(reader, type_id=type_id)
    except FormatError as e:
        # Never lose data: a filesystem we cannot parse is imaged sector by sector instead.
        warnings.append(SectorBySectorWarning(fs="filesystem", where=f" of {where}", detail=e.message))
        return None


def _add_regions(regions: Regions, start: int, usage: FsUsage | None, size: int) -> None:
    if usage is None or usage.fs in ("raw", "bitlocker"):
        regions.add(start, size, "raw")
    else:
        regions.add(start, size, "used", usage.used)
