"""Full, incremental and differential backups of a disk (or a disk-image file) into a backup folder.

An incremental stores what changed since the latest image, a differential what changed since the
latest full image; both compare per-unit hashes with their parent's (see `chunker`) and pin the
images they depend on by manifest digest.

Order of work (FORMAT.md "Write ordering"): lock the folder; plan (read-only); stream chunks through
the two-core pipeline (digest, compress, check the compressed copy, then seal and append in order);
commit volumes one by one; write the manifest last. Any failure or cancel removes this image's
``.partial`` files and leaves every earlier image untouched.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import zstandard

from .. import __version__
from ..crypto.kdf import DEFAULT_KDF, KdfParams
from ..crypto.keys import ImageKeys, KeyWrap
from ..disk.device import open_source
from ..errors import IntegrityError, PasswordRequired, UnreadableSectorsWarning, UsageError
from ..extents import merge_extents
from ..format import manifest as mf
from ..format.c_image import (COMP_STORED, COMP_ZSTD, ENC_AES256GCM, ENC_NONE, HASH_UNIT, ChunkEntry,
                              ExtentEntry, UnitEntry)
from ..format.volume import MIN_SPLIT, VolumeWriter
from ..io.atomic import write_durable
from ..io.reader import FdReader
from ..progress import Event, Progress
from .chunker import Chunk, Chunker, ParentIndex
from .pipeline import Ordered
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
    fs_state_warning: bool = False
    kind: str = "full"
    parent: str | None = None
    reused_bytes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "kind": self.kind, "parent": self.parent, "reused_bytes": self.reused_bytes,
                "source": self.source, "read_bytes": self.read_bytes,
                "data_bytes": self.data_bytes, "stored_bytes": self.stored_bytes, "chunks": self.chunks,
                "volumes": self.volumes, "seconds": round(self.seconds, 3), "warnings": self.warnings,
                "unreadable": [list(u) for u in self.unreadable]}


class _Packer:
    """Per-thread compressors (zstd contexts are not thread-safe; each thread gets its own)."""

    def __init__(self, level: int, keys: ImageKeys, check: bool) -> None:
        self.level = level
        self.keys = keys
        self.check = check
        self.local = threading.local()

    def __call__(self, chunk: Chunk) -> tuple[Chunk, bytes, int, bytes]:
        loc = self.local
        if not hasattr(loc, "c"):
            loc.c = zstandard.ZstdCompressor(level=self.level)
            loc.d = zstandard.ZstdDecompressor()
            loc.probe = zstandard.ZstdCompressor(level=1)
        raw = chunk.raw()
        # Drop the views now: a chunk waiting in the ordered queue must not keep its read buffers
        # (up to four 4 MiB ones) alive; only its number is used from here on.
        chunk.pieces.clear()
        digest = self.keys.digest(raw)
        if _incompressible(raw, loc):
            return chunk, digest, COMP_STORED, raw
        comp = loc.c.compress(raw)
        if len(comp) >= len(raw):
            return chunk, digest, COMP_STORED, raw
        if self.check and loc.d.decompress(comp, max_output_size=len(raw)) != raw:
            raise IntegrityError(detail=f"chunk {chunk.number}: compressed data does not decompress to the "
                                        "original (corruption before write; nothing was committed)")
        return chunk, digest, COMP_ZSTD, comp


# Already-compressed data (media, archives, encrypted files) is common on disks and costs a full zstd
# pass for nothing. Eight 16 KiB samples at level 1 (~0.1 ms) tell it apart: if none shrinks by 3 %,
# the chunk is stored as it is. (A chunk mixing such data with compressible data is caught unless all
# eight samples miss the compressible part.)
_PROBES = 8
_PROBE_SIZE = 16 << 10
_PROBE_GAIN = 0.97


def _incompressible(raw: bytes, loc: threading.local) -> bool:
    if len(raw) < _PROBES * _PROBE_SIZE * 2:
        return False
    step = len(raw) // _PROBES
    view = memoryview(raw)
    for i in range(_PROBES):
        sample = view[i * step:i * step + _PROBE_SIZE]
        if len(loc.probe.compress(sample)) < _PROBE_GAIN * len(sample):
            return False
    return True


def backup(source_path: str, folder: str, options: BackupOptions, progress: Progress) -> BackupResult:
    """Make a full image of ``source_path`` in ``folder``."""
    if not MIN_LEVEL <= options.level <= MAX_LEVEL:
        raise UsageError(detail=f"--level must be {MIN_LEVEL}..{MAX_LEVEL}, not {options.level}")
    if options.split is not None and options.split < MIN_SPLIT:
        raise UsageError(detail=f"--split must be at least {MIN_SPLIT >> 20} MiB")
    started = time.monotonic()
    repo = Repository(folder, create=True)
    with open_source(source_path) as disk:
        reader = FdReader(disk.fd, disk.size, source_path)
        progress.report(Event("plan", message=f"reading partition table and filesystems of {source_path}"))
        plan = plan_backup(reader, disk.logical_sector_size, options.partitions, options.sector_by_sector)
        identity = disk.identity()
        identity["table_fingerprint"] = table_fingerprint(reader, plan.table)
        with repo.lock():
            return _run(repo, reader, plan, identity, options, progress, started, source_path,
                        disk.logical_sector_size)


def _run(repo: Repository, reader: FdReader, plan: BackupPlan, identity: dict[str, Any], options: BackupOptions,
         progress: Progress, started: float, source_path: str, sector_size: int) -> BackupResult:
    image_id = new_image_id()
    encrypted = options.password is not None
    parent, chain = _choose_parent(repo, options, identity)
    wrap = KeyWrap.derive(options.password, options.kdf) if options.password is not None else None
    keys = ImageKeys.new(encrypted)
    image_uuid = mf.new_uuid()
    writer = VolumeWriter(repo.path, image_id, image_uuid, keys, ENC_AES256GCM if encrypted else ENC_NONE,
                          options.split)
    total = sum(r.length for r in plan.regions)
    done = [0]
    last = [0.0]

    def on_read(n: int) -> None:
        done[0] += n
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            progress.report(Event("backup", done[0], total))

    chunker = Chunker(reader, plan.regions, sector_size, on_read,
                      ParentIndex(parent.units, parent.extents) if parent else None)
    chunks = bytearray()
    data_bytes = 0
    try:
        for chunk, digest, compression, payload in Ordered(_Packer(options.level, keys, options.check_compression),
                                                            chunker):
            progress.check()
            vol, rec_off, stored = writer.add_chunk(chunk.number, compression, chunk.size, payload)
            chunks += ChunkEntry.build(volume_number=vol, record_offset=rec_off, stored_length=stored,
                                       raw_length=chunk.size, digest=digest)
            data_bytes += chunk.size
        extents, units = bytes(chunker.extents), bytes(chunker.units)
        volumes = writer.finish()
        progress.report(Event("backup", total, total))
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        stored_bytes = sum(v.length for v in volumes)
        warnings = list(plan.warnings)
        if chunker.unreadable:
            warnings.append(UnreadableSectorsWarning(
                detail=f"{sum(n for _, n in chunker.unreadable)} bytes of the source could not be read "
                       f"in {len(chunker.unreadable)} ranges; they are recorded as unreadable"))
        zero = merge_extents(plan.zeroed + chunker.zeroed)
        kind = options.mode
        parent_id = parent.image_id if parent else None
        summary = {"id": image_id, "kind": kind, "parent": parent_id, "time": now, "bytes": stored_bytes,
                   "encrypted": encrypted, "used_bytes": data_bytes,
                   "source": {"path": source_path, "size": identity.get("size"), "model": identity.get("model"),
                              "serial": identity.get("serial"),
                              "scheme": plan.table.scheme if plan.table else "none"},
                   "partitions": sorted(plan.included)}
        meta = {"format": 1, "id": image_id, "kind": kind, "parent": parent_id,
                "parent_digest": parent.digest.hex() if parent else None, "chain": chain, "time": now,
                "tool": f"rescue {__version__}",
                "options": {"level": options.level, "partitions": options.partitions, "split": options.split,
                            "sector_by_sector": options.sector_by_sector},
                "source": identity, "table": plan.table_json(),
                "volumes": [{"number": v.number, "name": v.name, "length": v.length, "records": v.records,
                             "trailer_digest": v.trailer_digest.hex()} for v in volumes],
                "zero_extents": [list(z) for z in zero],
                "unreadable": [list(u) for u in chunker.unreadable],
                "chunk_count": len(chunks) // ChunkEntry.size, "extent_count": len(extents) // ExtentEntry.size,
                "unit_count": len(units) // UnitEntry.size, "hash_unit": HASH_UNIT,
                "stats": {"read_bytes": total, "data_bytes": data_bytes, "stored_bytes": stored_bytes,
                          "reused_bytes": chunker.reused_bytes},
                "warnings": warnings}
        manifest = mf.Manifest(image_id, image_uuid, encrypted, summary, meta, bytes(chunks), extents, units,
                               keys=keys)
        progress.check()
        # The commit point: once this file is durably in place the image exists, not before.
        write_durable(repo.path, f"{image_id}.manifest", mf.encode(manifest, wrap))
    except BaseException:
        writer.abort()
        raise
    return BackupResult(image_id, source_path, total, data_bytes, stored_bytes, len(chunks) // ChunkEntry.size,
                        [v.name for v in volumes], time.monotonic() - started, warnings,
                        list(chunker.unreadable), plan.fs_state_warning, kind, parent_id, chunker.reused_bytes)


def _choose_parent(repo: Repository, options: BackupOptions,
                   identity: dict[str, Any]) -> tuple[mf.Manifest | None, list[dict[str, str]]]:
    """The parent of an incremental (latest image) or differential (latest full), checked to be an
    image of this very disk with an unchanged layout, and the chain the new image will pin."""
    if options.mode == "full":
        return None, []
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
    parent = load_chain(repo, entry.id, lambda: options.password)[0]
    src = parent.meta["source"]
    changed = [what for what, a, b in (
        ("size", src.get("size"), identity.get("size")),
        ("partition layout", src.get("table_fingerprint"), identity.get("table_fingerprint")),
        ("sector size", src.get("logical_sector_size"), identity.get("logical_sector_size")),
        ("serial", src.get("serial") or None, identity.get("serial") or None),
    ) if a != b]
    if changed:
        raise UsageError(detail=f"the source is not the disk of image {entry.id} as it was (its "
                                f"{', '.join(changed)} changed); make a new full backup")
    chain = [{"id": parent.image_id, "digest": parent.digest.hex()}] + list(parent.meta.get("chain", []))
    if len(chain) >= 1000:
        raise UsageError(detail=f"the chain behind image {entry.id} is {len(chain)} images long: "
                                "merge it (rescue merge) or make a new full backup")
    return parent, chain
