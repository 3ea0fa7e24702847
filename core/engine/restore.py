"""Restore an image onto a disk (or a disk-image file) of any size that can hold it.

`plan_restore` reads and authenticates the manifests of the point and its chain, validates every
volume's structure, checks the target (never the source or the image under any alias, not mounted or
in use, writable, same logical sector size) and lays the partitions out on it (`layout`), all without
writing a byte; the caller shows the plan and asks to confirm. `execute_restore` then runs FORMAT.md's
write order on the target (`core.engine.target`: no partition table until the data is written and read
back, then resize, boot sectors, the table, the boot repair). Its part is the data: every chunk the
point needs, each verified (authenticated, decompressed, digest-checked) before any of it is written,
read once, in the order it lies on the backup medium, by worker threads, with direct I/O where the
target takes it (each write read back from the device at once); then the zero extents
(pagefile.sys / hiberfil.sys contents, blank blocks of raw partitions).
Running the same restore again completes an interrupted one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..disk.device import Disk, check_target_path, open_target
from ..platform.firmware import boot_mode_note
from ..disk.discover import describe
from ..errors import UnreadableSectorsWarning, UsageError
from ..progress import Event, Progress
from ..repair.adapt_disk import AdaptRequest
from .chain import Chain, ChunkGroup
from .layout import Layout, plan_layout
from .pipeline import IO_WORKERS, Ordered, in_order
from .place import Placer
from .repo import Repository
from .target import require_tools, write_target


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
    adapt: AdaptRequest | None = None  # --adapt: the last step after the restore (`core.repair.adapt_disk`)

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "target": self.target, "target_description": self.target_description,
                "target_identity": self.target_identity, "target_size": self.target_size,
                "sector_size": self.sector_size, "required_size": self.required_size, "scheme": self.scheme,
                "partitions": self.partitions, "layout": self.layout.as_json() if self.layout else None,
                "data_bytes": self.data_bytes, "zero_bytes": self.zero_bytes, "warnings": self.warnings,
                "adapt": self.adapt.as_json() if self.adapt else None}

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


def plan_restore(folder: str, image_id: str | None, target: str, password: Callable[[], bytes | None],
                 progress: Progress, *, grow: int | None = None, keep_layout: bool = False,
                 scratch: str | None = None) -> RestorePlan:
    """Everything up to (not including) the first write."""
    repo = Repository(folder)
    # The target first: a missing or refused one is said before the volumes are checked and a password
    # is asked for; `_plan` checks it again with the image's size and sector size, and opens it.
    try:
        folder_files = [os.path.join(repo.path, n) for n in os.listdir(repo.path)]
    except OSError:
        folder_files = []  # unreadable folder: `Repository.resolve` below says so
    check_target_path(target, sources=[], image_paths=folder_files)
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
            layout = plan_layout(table, target, disk.size, disk.logical_sector_size, grow=grow,
                                 keep_layout=keep_layout, windows=table.has_windows)
        require_tools(layout)
        warnings: list[str] = []
        if meta.unreadable:
            warnings.append(UnreadableSectorsWarning(
                detail=f"the source had {len(meta.unreadable)} unreadable ranges at backup time; "
                       "those sectors are not restored"))
        if layout is not None and not layout.identical and any(m.action != "copy" for m in layout.moves):
            warnings.append("partitions are resized; the boot configuration is repaired after the data is written")
        note = boot_mode_note(table.scheme) if table and table.has_windows else None
        if note:
            warnings.append(note)  # informs (the restore itself is sound): no exit code of its own
        parts = [m.as_json() | {"label": m.source.label, "type_id": m.source.partition.type_id}
                 for m in layout.moves] if layout else []
        required = max([m["new_start"] + m["new_size"] for m in parts] + [required])
        zero_bytes = sum(n for _, n in meta.zero_extents)
        # What the restore writes is the point's whole extent map: an incremental's own data_bytes counts
        # only what it stored itself, not what it takes from its parents.
        data_bytes = chain.data_bytes()
        return RestorePlan(image_id, target, describe(disk), disk.size, sector_size, required,
                           table.scheme if table else "none", parts, data_bytes,
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
    total = plan.data_bytes + plan.zero_bytes

    def place(placer: Placer) -> None:
        def fetch(group: ChunkGroup) -> tuple[ChunkGroup, bytes]:
            return group, chain.read_stored(*group[0])

        def put(item: tuple[ChunkGroup, bytes]) -> None:
            # Verified, then written, in the worker: each chunk is checked before any of it is
            # written, and some workers' direct writes keep the target busy while the others
            # decrypt and decompress. Order does not matter: nothing here is the table.
            (key, places), stored = item
            raw = memoryview(chain.read_chunk(*key, stored))
            for disk_off, length, chunk_off in places:
                placer.put(disk_off, raw[chunk_off:chunk_off + length])

        # Image by image (each chunk read once, by one thread, in the order it lies on the medium);
        # the chunks and their places stream from the chain's tables, never held whole.
        for ref in range(len(chain.manifests)):
            fetched = in_order(fetch, chain.chunk_groups(ref))
            for _ in Ordered(put, fetched, depth=IO_WORKERS * 2, workers=IO_WORKERS):
                progress.check()
                progress.report(Event("restore", placer.written, total))
        for off, n in meta.zero_extents:
            progress.check()
            placer.zero(off, n)

    try:
        # Direct I/O where the target takes it: a third less CPU than buffered writes for the same
        # wall time here (`core.io.direct`), and each write is read back from the device at once.
        w = write_target(disk, plan.target, "restore", plan.layout, meta.table, plan._scratch, progress, place,
                         direct=True, adapt=plan.adapt)
    finally:
        plan.close()
    progress.report(Event("restore", total, total))
    return RestoreResult(plan.image_id, plan.target, w.written, w.verified, time.monotonic() - started,
                         plan.warnings + w.problems, [list(u) for u in meta.unreadable], w.actions, w.problems,
                         w.phases)
