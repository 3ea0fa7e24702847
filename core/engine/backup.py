"""Full, incremental and differential backups of a disk (or a disk-image file) into a backup folder.

An incremental stores what changed since the latest image, a differential what changed since the
latest full image; both compare per-unit hashes with their parent's (see `chunker`) and pin the
images they depend on by manifest digest.

Order of work (FORMAT.md "Write ordering"): lock the folder; plan (read-only); hand the chunks to the
`ImageWriter` (which packs them on two cores and commits volumes one by one); write the manifest last.
Any failure or cancel removes this image's ``.partial`` files and leaves every earlier image untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..crypto.kdf import DEFAULT_KDF, KdfParams
from ..disk.device import open_source
from ..errors import PasswordRequired, SerialChanged, UnreadableSectorsWarning, UsageError
from ..extents import merge_extents
from ..format import manifest as mf
from ..format.image_meta import MAX_CHAIN, ChainPin, ImageMeta, Settings, SourceDisk, Stats
from ..format.volume import MIN_SPLIT
from ..io.reader import FdReader
from ..progress import Event, Progress
from .chunker import Chunker, ParentUnits
from .imagewriter import ImageWriter
from .overlay import resolved_units
from .plan import BackupPlan, plan_backup, table_fingerprint
from .repo import Repository, new_image_id

MIN_LEVEL, MAX_LEVEL = 1, 19


@dataclass
class BackupOptions:
    partitions: str = "all"
    # zstd level 1: on disk data it stores ~3 % more than level 3 for ~40 % less CPU (bench/RESULTS.md);
    # higher levels are there for archives where size matters more than time.
    level: int = 1
    password: bytes | None = None
    kdf: KdfParams = DEFAULT_KDF
    split: int | None = None
    sector_by_sector: bool = False
    # Decompress every compressed chunk and compare before writing it (restic's verifyCiphertext):
    # a compressor or memory fault is caught before it is committed.
    check_compression: bool = True
    mode: str = "full"  # "full", "incremental" or "differential"
    # The user confirmed that a source whose serial differs from the parent's (all else equal) is the
    # same disk: seen through another controller or a USB dock, which report serials differently.
    accept_serial_change: bool = False


@dataclass
class BackupResult:
    image_id: str
    source: str
    read_bytes: int
    data_bytes: int
    stored_bytes: int
    chunks: int
    volumes: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    kind: str = "full"
    parent: str | None = None
    reused_bytes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "kind": self.kind, "parent": self.parent, "reused_bytes": self.reused_bytes,
                "source": self.source, "read_bytes": self.read_bytes,
                "data_bytes": self.data_bytes, "stored_bytes": self.stored_bytes, "chunks": self.chunks,
                "volumes": self.volumes, "seconds": round(self.seconds, 3), "warnings": self.warnings,
                "unreadable": [list(u) for u in self.unreadable]}


def backup(source_path: str, folder: str, options: BackupOptions, progress: Progress) -> BackupResult:
    """Make a full image of ``source_path`` in ``folder``."""
    if not MIN_LEVEL <= options.level <= MAX_LEVEL:
        raise UsageError(detail=f"--level must be {MIN_LEVEL}..{MAX_LEVEL}, not {options.level}")
    if options.split is not None and options.split < MIN_SPLIT:
        raise UsageError(detail=f"--split must be at least {MIN_SPLIT >> 20} MiB")
    started = time.monotonic()
    repo = Repository(folder, create=True)
    with open_source(source_path) as disk:
        reader = disk.reader()  # a Windows disk has no descriptor: each kind of disk gives its reader
        progress.report(Event("plan", message=f"reading partition table and filesystems of {source_path}"))
        plan = plan_backup(reader, disk.logical_sector_size, options.partitions, options.sector_by_sector)
        identity = SourceDisk.from_identity(disk.identity(), table_fingerprint(reader, plan.table))
        with repo.lock():
            return _run(repo, reader, plan, identity, options, progress, started, source_path)


def _run(repo: Repository, reader: FdReader, plan: BackupPlan, identity: SourceDisk, options: BackupOptions,
         progress: Progress, started: float, source_path: str) -> BackupResult:
    image_id = new_image_id()
    parent_chain, chain = _choose_parent(repo, options, identity)
    parent = parent_chain[0] if parent_chain else None
    total = plan.regions.bytes_of()
    try:
        with ImageWriter(repo, image_id, progress, "backup", total, password=options.password, kdf=options.kdf,
                         split=options.split, level=options.level,
                         check_compression=options.check_compression) as writer:
            chunker = Chunker(reader, plan.regions, identity.logical_sector_size, writer.tables, writer.on_read,
                              ParentUnits(resolved_units(parent_chain)) if parent_chain else None)
            writer.write(chunker)
            volumes = writer.finish()
            warnings = list(plan.warnings)
            if parent and (parent.meta.source.serial or "") != (identity.serial or ""):
                warnings.append(f"continued the chain of image {parent.image_id} on the user's word that this is the "
                                f"same disk: its serial was {parent.meta.source.serial!r}, now {identity.serial!r}")
            if chunker.unreadable:
                warnings.append(UnreadableSectorsWarning(
                    detail=f"{sum(n for _, n in chunker.unreadable)} bytes of the source could not be read "
                           f"in {len(chunker.unreadable)} ranges; they are recorded as unreadable"))
            meta = ImageMeta(
                id=image_id, kind=options.mode, parent=parent.image_id if parent else None,
                parent_digest=parent.digest.hex() if parent else None, chain=chain,
                time=datetime.now(timezone.utc).isoformat(timespec="microseconds"), tool=f"rescue {__version__}",
                options=Settings(options.level, options.partitions, options.split, options.sector_by_sector),
                source=identity, table=plan.image_table(),
                zero_extents=tuple(merge_extents(plan.zeroed + chunker.zeroed)),
                unreadable=tuple(chunker.unreadable), warnings=tuple(warnings),
                stats=Stats(total, writer.data_bytes, writer.stored_bytes, chunker.reused_bytes))
            meta = writer.commit(meta)
    finally:
        for m in parent_chain:  # (their table blocks were read; the files can close now)
            m.close()
    return BackupResult(image_id, source_path, total, writer.data_bytes, writer.stored_bytes,
                        meta.chunk_count, [v.name for v in volumes], time.monotonic() - started, warnings,
                        list(chunker.unreadable), meta.kind, meta.parent,
                        chunker.reused_bytes)


def _choose_parent(repo: Repository, options: BackupOptions,
                   identity: SourceDisk) -> tuple[list[mf.Manifest], tuple[ChainPin, ...]]:
    """The parent of an incremental (latest image) or differential (latest full) followed by its own
    chain, checked to be an image of this very disk with an unchanged layout; and the chain the new
    image will pin. (The parent's chain gives the current unit hashes: see `overlay`.)"""
    if options.mode == "full":
        return [], ()
    if options.mode not in ("incremental", "differential"):
        raise UsageError(detail=f"unknown backup kind {options.mode!r}")
    images = [i for i in repo.list_images() if i.complete]
    if options.mode == "differential":
        images = [i for i in images if i.kind == "full"]
    if not images:
        raise UsageError(detail=f"--{options.mode} needs an earlier "
                                f"{'full ' if options.mode == 'differential' else ''}image in {repo.path}; "
                                "make a full backup first")
    entry = images[-1]
    if entry.encrypted != (options.password is not None):
        if entry.encrypted:
            raise PasswordRequired(image=entry.id)
        raise UsageError(detail=f"image {entry.id} is not encrypted: a chain is all encrypted or all plain; "
                                "make a new full backup to start an encrypted chain")
    # Every pin of the parent's own chain is checked, so a broken chain is refused now, not at restore.
    from .chain import load_chain
    parent_chain = load_chain(repo, entry.id, lambda: options.password)
    parent = parent_chain[0]
    src = parent.meta.source
    changed = [what for what, a, b in (
        ("size", src.size, identity.size),
        ("partition layout", src.table_fingerprint, identity.table_fingerprint),
        ("sector size", src.logical_sector_size, identity.logical_sector_size),
        ("serial", src.serial or None, identity.serial or None),
    ) if a != b]
    # Only the serial differs, and the partition table (its sectors: disk signature or GPT GUIDs, and
    # the layout) is the very same: a disk without a table has nothing to tell it from another.
    if changed == ["serial"] and parent.meta.table and src.table_fingerprint:
        if options.accept_serial_change:
            changed = []
        else:
            raise SerialChanged(image=entry.id, old=src.serial or "", new=identity.serial or "")
    if changed:
        raise UsageError(detail=f"the source is not the disk of image {entry.id} as it was (its "
                                f"{', '.join(changed)} changed); make a new full backup")
    chain = (ChainPin(parent.image_id, parent.digest.hex()),) + parent.meta.chain
    if len(chain) >= MAX_CHAIN:
        raise UsageError(detail=f"the chain behind image {entry.id} is {len(chain)} images long: "
                                "merge it (rescue merge) or make a new full backup")
    return parent_chain, chain
