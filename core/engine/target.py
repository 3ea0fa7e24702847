"""One target session: FORMAT.md's restore write order, the same for restore and clone.

`write_target` runs the order on one opened target and wraps what goes wrong there:

1. re-check that the target is the disk that was planned (`recheck`), make an md array that was started
   read-only writable (the user has confirmed it by now), then zero its first sector (and the GPT
   headers) and flush, so an interrupted run leaves a disk without a partition table, which
   nobody mistakes for a good copy;
2. and 3. the caller's ``place`` writes the data and the zero extents through the `Placer`;
4. read back, caches dropped, what was not verified at once (`Placer.read_back`);
5. grow or shrink NTFS, set the moved boot sectors' hidden sectors (`core.repair.bootrecords`);
6. write the partition table (the source's own bytes when the layout is identical), flush;
7. when partitions that Windows' boot configuration names moved, repair it (`core.repair`);
8. with ``--adapt``, fit the Windows to the target's disk controller (`core.repair.adapt_disk`).

An `OSError` from the target becomes `TargetWriteError` saying the target is left unfinished and the
command can simply be run again; our own errors pass unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..disk.device import Disk, recheck
from ..errors import BootRepairWarning, TargetWriteError
from ..extents import Extent
from ..format.image_meta import ImageTable
from ..platform.tools import require
from ..progress import Progress
from ..repair import repair_disk
from ..repair.adapt_disk import AdaptRequest, adapt_written_disk
from ..repair.bootrecords import BootRecordPlan, apply_boot_records, plan_hidden_sectors
from ..windows.roles import BOOT_ROLES
from .layout import Layout
from .place import Placer


@dataclass
class Written:
    """What a session did to the target."""

    written: int  # bytes placed
    verified: int  # bytes read back and compared
    actions: list[str]  # resizes, boot sectors, partition table, boot repair changes
    problems: list[str]  # what the boot repair had to leave undone (`BootRepairWarning`s)
    phases: dict[str, float]  # seconds: writing, reading back


def write_target(disk: Disk, target: str, command: str, layout: Layout | None, table: ImageTable | None,
                 scratch: str, progress: Progress, place: Callable[[Placer], None], *,
                 direct: bool = False, adapt: AdaptRequest | None = None) -> Written:
    """Run the write order on ``disk`` (named ``target`` in errors; ``command`` is what to run again).

    ``place`` writes steps 2 and 3 through the placer it is given. ``direct``: ask the target for
    direct I/O before anything is placed (each write is then read back at once). ``adapt`` (--adapt):
    fit the Windows to the target's controller as the very last step (`core.repair.adapt_disk`).
    """
    started = time.monotonic()
    placer = Placer(disk, layout, _areas(table), scratch)
    try:
        recheck(disk)
        # a Windows disk (core.platform.windows.disk.WinDisk) is never an md array
        switched = isinstance(disk, Disk) and disk.make_writable()
        invalidate(disk, table.scheme if table else "none", disk.logical_sector_size)
        if direct:
            disk.enable_direct()
        place(placer)
        phases = {"write": time.monotonic() - started}
        verified = placer.read_back(progress)
        phases["read_back"] = time.monotonic() - started - phases["write"]
        problems: list[str] = []
        actions = _finish(placer, table, progress, problems)
        if switched:
            actions.insert(0, f"RAID array {disk.path} made writable (it had been started read-only)")
        if adapt is not None:
            # the adapt opens the disk itself: ntfs-3g on a loop device on Linux; on Windows the volumes
            # Windows mounts on it once this handle and its volume locks are let go
            disk.close()
            try:
                done, left = adapt_written_disk(disk.path, adapt)
            except OSError as e:  # the disk is complete and checked: only the adapt is left to do
                done, left = [], [f"adapt failed ({e.strerror or e}); the data and the partition table are "
                                  f"written: run `rescue adapt {disk.path}`"]
            actions += done
            problems.extend(BootRepairWarning(detail=p) for p in left)
    except OSError as e:
        raise TargetWriteError(target=target, detail=f"{e.strerror or e}; the target is left unfinished "
                                                    f"(no partition table): run the {command} again") from e
    finally:
        placer.close()
    return Written(placer.written, verified, actions, problems, {k: round(v, 3) for k, v in phases.items()})


def _areas(table: ImageTable | None) -> list[Extent]:
    """The source's partition-table areas (written last, never from the data pass)."""
    return [(a.offset, a.length) for a in table.areas] if table else []


def invalidate(disk: Disk, scheme: str, ss: int) -> None:
    """Step 1: no partition table until the very end (wimlib's WRITE_IN_PROGRESS idea)."""
    spots = [(0, ss)]
    if scheme == "gpt":
        spots += [(ss, ss), (disk.size - ss, ss)]
    for off, n in spots:
        disk.pwrite(off, bytes(n))
    disk.sync()


def require_tools(layout: Layout | None) -> None:
    """Refuse, at the plan, a layout whose steps 5 to 7 need an external tool this machine lacks (WinPE
    has none of them), before the target is touched instead of after its data is written."""
    if layout is None:
        return
    for m in layout.moves:
        if m.action != "copy" and m.fs == "ntfs":
            require("ntfsresize", f"resizing NTFS of partition {m.number}")
    if _repairs_boot(layout):
        require("ntfs-3g", "repairing Windows' boot configuration after partitions moved")


def _repairs_boot(layout: Layout) -> bool:
    """Step 7 runs: a partition moved on a disk with partitions Windows' boot configuration names.
    Any move counts on a Windows disk: MountedDevices names data partitions (D:, E:) by place too."""
    return (any(m.new_start != m.old_start for m in layout.moves)
            and any(m.role in BOOT_ROLES for m in layout.moves))


def _finish(placer: Placer, table: ImageTable | None, progress: Progress, problems: list[str]) -> list[str]:
    """Steps 5 to 7; returns what was done and appends to ``problems`` what the repair left undone."""
    actions = placer.resize(progress)
    if table is None or placer.layout is None:
        return actions
    disk, layout = placer.disk, placer.layout
    # An unmoved partition is restored bit for bit; `rescue fix-boot` repairs a wrong field there. What
    # the boot sectors' own plan finds wrong besides (an unusable boot sector) is step 7's to report.
    boot = BootRecordPlan()
    for m in layout.moves:
        if m.new_start != m.old_start and m.fs:
            plan_hidden_sectors(disk, m.number, m.fs, m.new_start, m.new_size, layout.sector_size, boot)
    apply_boot_records(disk, boot)
    actions.extend(f"{c.where}: {c.old} -> {c.new}" for c in boot.changes)
    for off, data in placer.table_writes(table):
        disk.pwrite(off, data)
    disk.sync()
    actions.append("partition table written" + ("" if layout.identical else " for the new layout"))
    if not _repairs_boot(layout):
        if table.has_windows:  # said, so the end of a restore never leaves it a question
            actions.append("boot repair: not needed, every partition kept its place")
        return actions  # nothing Windows' boot configuration names moved
    # Partitions moved: point the BCD store, drive letters and boot records at their new places. The
    # repair opens the disk itself (exclusively), so ours is closed first.
    disk.close()
    try:
        report = repair_disk(disk.path, dry_run=False)
    except OSError as e:
        # The data and the partition table are written and checked: the target is complete but for its
        # boot configuration, which fix-boot finishes; not a reason to restore everything again.
        problems.append(BootRepairWarning(detail=f"boot repair failed ({e.strerror or e}); the data and the "
                                                 f"partition table are written: run `rescue fix-boot {disk.path}`"))
        return actions
    actions.extend(f"boot repair: {c.area}: {c.where}: {c.old} -> {c.new}" for c in report.changes)
    if not report.changes:
        actions.append("boot repair: nothing to change, every boot entry already points at its partition")
    actions.extend(f"boot repair: kept a copy of {b}" for b in report.backups)
    problems.extend(BootRepairWarning(detail=p) for p in report.problems)
    return actions
