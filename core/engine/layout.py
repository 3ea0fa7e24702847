"""Fitting a disk's partitions onto a target of another size: the plan a restore or clone shows first.

Rules (what technicians expect): small system partitions (System Reserved, ESP, MSR, recovery) keep
their sizes; every start is aligned to 1 MiB; the Windows partition (or the one ``--grow N`` names)
takes whatever is left, growing or shrinking. Only NTFS can change size (with ntfsresize); any other
partition keeps its size, and a target that cannot hold the result is refused with the numbers.
Partitions keep their order, types, flags, GUIDs and the disk keeps its signature / GUID, so Windows'
own references stay as valid as they can (the boot repair fixes the offsets that did move).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import TargetRefused, UsageError
from ..format.image_meta import ImageTable, PartitionEntry
from ..partition.model import Partition

MiB = 1 << 20
# ntfsresize needs room for the MFT, logs and the clusters it moves; 5 % + 64 MiB above the used data
# is what it accepts in practice for volumes of a few GiB and up (it refuses itself when that is short).
SHRINK_MARGIN = 0.05
SHRINK_SLACK = 64 * MiB
MBR_LIMIT_SECTORS = 1 << 32  # 32-bit LBAs: an MBR disk addresses 2 TiB with 512-byte sectors

Action = Literal["copy", "grow", "shrink"]


@dataclass
class PartMove:
    number: int
    role: str
    fs: str | None
    old_start: int
    old_size: int
    new_start: int
    new_size: int
    used_bytes: int
    source: PartitionEntry = field(repr=False)

    @property
    def action(self) -> Action:
        if self.new_size > self.old_size:
            return "grow"
        if self.new_size < self.old_size:
            return "shrink"
        return "copy"

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "role": self.role, "fs": self.fs, "old_start": self.old_start,
                "old_size": self.old_size, "new_start": self.new_start, "new_size": self.new_size,
                "used_bytes": self.used_bytes, "action": self.action}


@dataclass
class Layout:
    scheme: str
    sector_size: int
    target_size: int
    moves: list[PartMove]
    identical: bool  # same offsets and sizes as the source: the source's table bytes are reused

    def as_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "sector_size": self.sector_size, "target_size": self.target_size,
                "identical": self.identical, "partitions": [m.as_json() for m in self.moves]}

    def move_of(self, disk_off: int) -> PartMove | None:
        for m in self.moves:
            if m.old_start <= disk_off < m.old_start + m.old_size:
                return m
        return None

    def partitions(self) -> list[Partition]:
        """The target's partitions, for the table writers."""
        return [replace(m.source.partition, start=m.new_start, size=m.new_size) for m in self.moves]


def _align_up(x: int, a: int = MiB) -> int:
    return (x + a - 1) // a * a


def _align_down(x: int, a: int = MiB) -> int:
    return x // a * a


def min_size(p: PartitionEntry) -> int:
    """The smallest size an NTFS partition may be shrunk to, from its used bytes."""
    return min(p.size, _align_up(int(_used(p) * (1 + SHRINK_MARGIN)) + SHRINK_SLACK))


def _used(p: PartitionEntry) -> int:
    return p.used_bytes or p.size


def plan_layout(table: ImageTable, target: str, target_size: int, target_sector_size: int, *,
                grow: int | None = None, keep_layout: bool = False, windows: bool = True) -> Layout:
    """Place the included partitions of ``table`` (as the image records it) on ``target``, a disk of
    ``target_size`` bytes; `TargetRefused` naming it when they do not fit."""
    ss = table.sector_size
    if target_sector_size != ss:
        if windows and target_sector_size == 4096:
            raise TargetRefused(target=target, detail="it has 4096-byte logical sectors (4Kn): Windows 7 boots "
                                                      "only from 512-byte-sector disks (512n or 512e)")
        raise TargetRefused(target=target, detail=f"its logical sector size is {target_sector_size}, the "
                                                  f"image's is {ss}")
    parts = sorted(table.included, key=lambda p: p.start)
    if any(p.partition.logical for p in parts) and not keep_layout:
        # Logical partitions would need their EBR chain re-laid; keep the original layout for them.
        keep_layout = True
    same_size = target_size == table.disk_size
    backup_len = sum(a.length for a in table.areas if a.role == "gpt-backup")
    if table.scheme == "gpt":
        limit = target_size - backup_len
    else:
        limit = min(target_size, MBR_LIMIT_SECTORS * ss)
    if keep_layout or (same_size and grow is None):
        moves = [PartMove(p.number, p.role, p.fs, p.start, p.size, p.start, p.size, _used(p), p) for p in parts]
        end = max([m.new_start + m.new_size for m in moves] + [0])
        if end > limit:
            raise TargetRefused(target=target, detail=f"the partitions need {end + backup_len} bytes at their "
                                                      f"original places, the target has {target_size}")
        return Layout(table.scheme, ss, target_size, moves, identical=same_size or table.scheme == "mbr")
    grower = _grower(parts, grow)
    # Every partition but the grower keeps its size; the grower gets what is left after aligning.
    fixed = [p for p in parts if p is not grower]
    start = _align_up(max(parts[0].start, MiB)) if parts else MiB
    after = sum(_align_up(p.size) for p in fixed if grower and p.start > grower.start)
    moves = []
    for p in parts:
        if grower is not None and p is grower:
            size = _align_down(limit - after - start)
            if p.fs != "ntfs":
                size = p.size
            if size < min_size(p):
                raise TargetRefused(target=target, detail=(
                    f"partition {p.number} ({p.role}) holds {p.used_bytes} bytes of data and "
                    f"cannot shrink below {min_size(p)} bytes; the target leaves {max(size, 0)} bytes for it "
                    f"(target {target_size} bytes, other partitions {sum(q.size for q in fixed)})"))
        else:
            size = p.size
        moves.append(PartMove(p.number, p.role, p.fs, p.start, p.size, start, size, _used(p), p))
        start = _align_up(start + size)
    end = max(m.new_start + m.new_size for m in moves) if moves else 0
    if end > limit:
        raise TargetRefused(target=target, detail=f"the partitions need at least {end + backup_len} bytes, "
                                                  f"the target has {target_size}")
    identical = all(m.new_start == m.old_start and m.new_size == m.old_size for m in moves) and same_size
    return Layout(table.scheme, ss, target_size, moves, identical)


def _grower(parts: list[PartitionEntry], grow: int | None) -> PartitionEntry | None:
    if grow is not None:
        for p in parts:
            if p.number == grow:
                if p.fs != "ntfs":
                    raise UsageError(detail=f"--grow {grow}: only NTFS partitions can be resized "
                                            f"(partition {grow} is {p.fs or 'raw'})")
                return p
        raise UsageError(detail=f"--grow {grow}: no such partition in the image")
    windows = [p for p in parts if p.role == "windows" and p.fs == "ntfs"]
    ntfs = [p for p in parts if p.fs == "ntfs"]
    pool = windows or ntfs
    return max(pool, key=lambda p: p.size) if pool else None
