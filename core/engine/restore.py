"""Restore an image onto a disk (or a disk-image file) of any size that can hold it.

`plan_restore` reads and authenticates the manifests of the point and its chain, validates every
volume's structure, checks the target (never the source or the image under any alias, not mounted or
in use, writable, same logical sector size) and lays the partitions out on it (`layout`), all without
writing a byte; the caller shows the plan and asks to confirm. `execute_restore` then:

1. re-checks that the target is the disk that was planned (same identity and size), and zeroes its
   first sector (and the GPT headers), so that an interrupted restore leaves a disk with no partition
   table, which nobody can mistake for a good copy;
2. writes every chunk the point needs, each verified (authenticated, decompressed, digest-checked)
   before any of it is written, read once, in the order it lies on the backup medium, by worker
   threads; where the target takes direct I/O each write is read back from the device at once;
3. writes the zero extents (pagefile.sys / hiberfil.sys contents, blank blocks of raw partitions);
4. after the last write, reads back from the medium what was not verified at once, and a probe of
   every write that was (a later write landing on earlier data shows there), and compares
   (`VerifyAfterWriteError` otherwise): every written byte has been read back;
5. grows or shrinks NTFS to the planned sizes (ntfsresize), fixes the boot sectors' hidden sectors;
6. writes the partition table (the source's own bytes when the layout is identical);
7. when partitions moved, repairs Windows' boot configuration (`core.repair`: BCD devices, drive
   letters, boot records). A kill during step 7 leaves a complete, verified disk whose boot
   configuration may still name the old places: `rescue fix-boot` or a rerun finishes it.
Running the same restore again completes an interrupted one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..disk.device import Disk, open_target, recheck
from ..disk.discover import describe
from ..errors import (BootRepairWarning, TargetRefused, TargetWriteError, UnreadableSectorsWarning,
                      UsageError)
from ..extents import Extent
from ..format.image_meta import ImageTable
from ..progress import Event, Progress
from ..repair import repair_disk
from ..windows.roles import BOOT_ROLES
from .chain import Chain
from .layout import Layout, plan_layout
from .pipeline import IO_WORKERS, Ordered
from .place import Placer, hidden_sectors_writes
from .repo import Repository


@dataclass
class RestorePlan:
    image_id: str
    target: str
    target_description: str
    target_size: int
    sector_size: int
    required_size: int
    scheme: str
    partitions: list[dict[str, Any]]
    data_bytes: int
    zero_bytes: int
    warnings: list[str] = field(default_factory=list)
    layout: Layout | None = None
    target_identity: dict[str, Any] = field(default_factory=dict)
    # Held between plan and execute; not part of the printed plan.
    _chain: Chain | None = field(default=None, repr=False)
    _disk: Disk | None = field(default=None, repr=False)
    _scratch: str = field(default="", repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "target": self.target, "target_description": self.target_description,
                "target_identity": self.target_identity, "target_size": self.target_size,
                "sector_size": self.sector_size, "required_size": self.required_size, "scheme": self.scheme,
                "partitions": self.partitions, "layout": self.layout.as_json() if self.layout else None,
                "data_bytes": self.data_bytes, "zero_bytes": self.zero_bytes, "warnings": self.warnings}

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        if self._chain is not None:
            self._chain.close()
            self._chain = None


@dataclass
class RestoreResult:
    image_id: str
    target: str
    written_bytes: int
    verified_bytes: int
    seconds: float
    warnings: list[str]
    unreadable: list[list[int]]
    actions: list[str] = field(default_factory=list)
    boot_problems: list[str] = field(default_factory=list)  # what the boot repair left undone
    phases: dict[str, float] = field(default_factory=dict)  # seconds: writing, reading back

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "target": self.target, "written_bytes": self.written_bytes,
                "verified_bytes": self.verified_bytes, "seconds": round(self.seconds, 3),
                "phases": self.phases,
                "warnings": self.warnings, "actions": self.actions, "boot_problems": self.boot_problems,
                "unreadable_in_source": self.unreadable}


def meta_areas(table: ImageTable | None) -> list[Extent]:
    """The source's partition-table areas (written last, never from the data pass)."""
    return [(a.offset, a.length) for a in table.areas] if table else []


def plan_restore(folder: str, image_id: str | None, target: str, password: Callable[[], bytes | None],
                 progress: Progress, *, grow: int | None = None, keep_layout: bool = False,
                 scratch: str | None = None) -> RestorePlan:
    """Everything up to (not including) the first write."""
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    progress.report(Event("check", message=f"checking the volumes of image {image_id} and its chain"))
    chain = Chain(repo, image_id, password)  # structural pre-flight: every volume of every image intact
    try:
        return _plan(repo, image_id, chain, target, grow, keep_layout, scratch or repo.path)
    except BaseException:
        chain.close()
        raise


def _plan(repo: Repository, image_id: str, chain: Chain, target: str, grow: int | None, keep_layout: bool,
          scratch: str) -> RestorePlan:
    meta = chain.point.meta
    table = meta.table
    sector_size = meta.source.logical_sector_size
    image_paths = [os.path.join(repo.path, v.name) for m in chain.manifests for v in m.meta.volumes]
    image_paths += [repo.manifest_path(m.image_id) for m in chain.manifests]
    # Without a table the image is one volume: the target must be at least the source's size. With a
    # table the layout decides, after the target's size is known.
    required = meta.source.size if not table else 1
    disk = open_target(target, sources=[], required_size=required, sector_size=sector_size,
                       image_paths=image_paths)
    try:
        layout = None
        if table:
            try:
                layout = plan_layout(table, disk.size, disk.logical_sector_size, grow=grow, keep_layout=keep_layout,
                                     windows=table.has_windows)
            except TargetRefused as e:
                raise TargetRefused(target=target, detail=e.message.split(": ", 1)[-1]) from None
        warnings: list[str] = []
        if meta.unreadable:
            warnings.append(UnreadableSectorsWarning(
                detail=f"the source had {len(meta.unreadable)} unreadable ranges at backup time; "
                       "those sectors are not restored"))
        if layout is not None and not layout.identical and any(m.action != "copy" for m in layout.moves):
            warnings.append("partitions are resized; the boot configuration is repaired after the data is written")
        parts = [m.as_json() | {"label": m.source.label, "type_id": m.source.partition.type_id}
                 for m in layout.moves] if layout else []
        required = max([m["new_start"] + m["new_size"] for m in parts] + [required])
        zero_bytes = sum(n for _, n in meta.zero_extents)
        return RestorePlan(image_id, target, describe(disk), disk.size, sector_size, required,
                           table.scheme if table else "none", parts, meta.stats.data_bytes,
                           zero_bytes, warnings, layout, disk.identity(), chain, disk, scratch)
    except BaseException:
        disk.close()
        raise


def execute_restore(plan: RestorePlan, progress: Progress) -> RestoreResult:
    """Write the image to the target. On any failure the target is left without a partition table."""
    if plan._disk is None or plan._chain is None:
        raise UsageError(detail="restore plan was already used or closed")
    started = time.monotonic()
    disk, chain = plan._disk, plan._chain
    meta = chain.point.meta
    placer = Placer(disk, plan.layout, meta_areas(meta.table), plan._scratch)
    try:
        recheck(disk)
        invalidate(disk, plan.scheme, plan.sector_size)
        # Direct I/O where the target takes it (before the workers start): a third less CPU than
        # buffered writes for the same wall time here (`core.io.direct`), and each write is read
        # back from the device at once.
        disk.enable_direct()
        total = plan.data_bytes + plan.zero_bytes
        by_chunk = chain.extents_by_chunk()

        def place(key: tuple[int, int]) -> None:
            # Verified, then written, in the worker: each chunk is checked before any of it is
            # written, and some workers' direct writes keep the target busy while the others
            # decrypt and decompress. Order does not matter: nothing here is the table.
            raw = memoryview(chain.read_chunk(*key))
            for disk_off, length, chunk_off in by_chunk[key]:
                placer.put(disk_off, raw[chunk_off:chunk_off + length])

        for _ in Ordered(place, chain.read_order(by_chunk), depth=IO_WORKERS * 2, workers=IO_WORKERS):
            progress.check()
            progress.report(Event("restore", placer.written, total))
        for off, n in meta.zero_extents:
            progress.check()
            placer.zero(off, n)
        phases = {"write": time.monotonic() - started}
        verified = placer.read_back(progress)
        phases["read_back"] = time.monotonic() - started - phases["write"]
        problems: list[str] = []
        actions = finish_target(placer, meta.table, progress, problems)
        progress.report(Event("restore", total, total))
    except OSError as e:
        raise TargetWriteError(target=plan.target, detail=f"{e.strerror or e}; the target is left unfinished "
                                                         "(no partition table): run the restore again") from e
    finally:
        placer.close()
        plan.close()
    return RestoreResult(plan.image_id, plan.target, placer.written, verified, time.monotonic() - started,
                         plan.warnings + problems, [list(u) for u in meta.unreadable], actions, problems,
                         {k: round(v, 3) for k, v in phases.items()})


def invalidate(disk: Disk, scheme: str, ss: int) -> None:
    """Step 1: no partition table until the very end (wimlib's WRITE_IN_PROGRESS idea)."""
    spots = [(0, ss)]
    if scheme == "gpt":
        spots += [(ss, ss), (disk.size - ss, ss)]
    for off, n in spots:
        disk.pwrite(off, bytes(n))
    disk.sync()


def finish_target(placer: Placer, table: ImageTable | None, progress: Progress,
                  problems: list[str]) -> list[str]:
    """Steps 5 and 6: resize, boot sectors, the partition table, then the boot repair when partitions
    moved; returns what was done and appends to ``problems`` what the repair had to leave undone."""
    actions = placer.resize(progress)
    if table is None or placer.layout is None:
        return actions
    disk = placer.disk
    for off, data in hidden_sectors_writes(disk, placer.layout.moves, placer.layout.sector_size):
        disk.pwrite(off, data)
        actions.append(f"boot sector at byte {off}: hidden sectors set to the partition's new start")
    disk.sync()
    for off, data in placer.table_writes(table):
        disk.pwrite(off, data)
    disk.sync()
    actions.append("partition table written" + ("" if placer.layout.identical else " for the new layout"))
    moved = [m for m in placer.layout.moves if m.new_start != m.old_start]
    if not moved or not any(m.role in BOOT_ROLES for m in placer.layout.moves):
        return actions  # every partition starts where it did: nothing Windows' boot configuration names moved
    # Partitions moved: point the BCD store, drive letters and boot records at their new places. The
    # repair opens the disk itself (exclusively), so ours is closed first.
    disk.close()
    report = repair_disk(disk.path, dry_run=False)
    actions.extend(f"{c.area}: {c.where}: {c.old} -> {c.new}" for c in report.changes)
    actions.extend(f"kept a copy: {b}" for b in report.backups)
    problems.extend(BootRepairWarning(detail=p) for p in report.problems)
    return actions
