"""Writing one image: the mirror of `imagereader` (as fsarchiver's archwriter beside archreader).

`ImageWriter` owns everything an image is made of: its data key and UUID, the volume writer, the
packing pipeline (digest, compress, check the compressed copy, then seal and append in chunk order
on two cores), the chunk table, the metadata and summary, the key wrap, the commit and the abort.
Backup and merge only choose what to write: they hand it chunks (`write`), the rows of its tables
(`tables`, a sink that streams them into the manifest's table area as they come, so no table is
ever held whole) and the image's metadata (`commit`). Until the manifest is durably in place nothing
is committed; leaving the ``with`` block by an exception removes every file of the image (FORMAT.md
"Write ordering").
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Iterable

import zstandard

from ..crypto.kdf import KdfParams
from ..crypto.keys import ImageKeys, KeyWrap
from ..errors import IntegrityError
from ..format import manifest as mf
from ..format.c_image import COMP_STORED, COMP_ZSTD, ENC_AES256GCM, ENC_NONE, ChunkEntry, TableBlock
from ..format.image_meta import ImageMeta
from ..format.tables import EXTENTS, UNITS
from ..format.volume import VolumeInfo, VolumeWriter
from ..io.allocator import keep_freed_memory
from ..progress import Event, Progress
from .chunker import Chunk
from .pipeline import Ordered
from .repo import Repository

# Progress is reported at most this often: a report per 64 KiB read costs more than it tells.
REPORT_EVERY = 0.2


class ImageWriter:
    """One new image in ``repo``:
    ``with ImageWriter(...) as w: w.write(chunks); w.finish(); w.commit(meta)``, the chunks' table
    rows going to ``w.tables`` meanwhile."""

    def __init__(self, repo: Repository, image_id: str, progress: Progress, phase: str, total: int, *,
                 password: bytes | None, kdf: KdfParams, split: int | None, level: int,
                 check_compression: bool = True) -> None:
        # Before the pipeline's threads exist (one arena for all of them): see `io.allocator`.
        keep_freed_memory()
        self.repo = repo
        self.image_id = image_id
        self.progress = progress
        self.phase = phase
        self.total = total
        self.encrypted = password is not None
        self.keys = ImageKeys.new(self.encrypted)
        self.uuid = mf.new_uuid()
        self.wrap = KeyWrap.derive(password, kdf) if password is not None else None
        self.volumes = VolumeWriter(repo.path, image_id, self.uuid, self.keys,
                                    ENC_AES256GCM if self.encrypted else ENC_NONE, split)
        self.packer = _Packer(level, self.keys, check_compression)
        self.manifest = mf.ManifestWriter(repo.path, image_id, self.uuid, self.keys, self.encrypted)
        self.tables = self.manifest.tables
        self.chunks = bytearray()
        self.data_bytes = 0
        self.stored_bytes = 0
        self.done = 0
        self._last_report = 0.0
        self._finished: list[VolumeInfo] = []

    def on_read(self, n: int) -> None:
        """The chunker's read callback: progress of the ``phase``, at most every REPORT_EVERY seconds."""
        self.done += n
        now = time.monotonic()
        if now - self._last_report >= REPORT_EVERY:
            self._last_report = now
            self.progress.report(Event(self.phase, self.done, self.total))

    def write(self, chunks: Iterable[Chunk]) -> None:
        """Pack every chunk on the pipeline's threads and append them, in order, to the volumes."""
        for chunk, digest, compression, payload in Ordered(self.packer, chunks):
            self.progress.check()
            vol, rec_off, stored = self.volumes.add_chunk(chunk.number, compression, chunk.size, payload)
            self.chunks += ChunkEntry.build(volume_number=vol, record_offset=rec_off, stored_length=stored,
                                            raw_length=chunk.size, digest=digest)
            self.data_bytes += chunk.size

    def finish(self) -> list[VolumeInfo]:
        """Close the last volume; ``stored_bytes`` is then the image's size."""
        self._finished = self.volumes.finish()
        self.stored_bytes = sum(v.length for v in self._finished)
        self.progress.report(Event(self.phase, self.total, self.total))
        return self._finished

    def commit(self, meta: ImageMeta) -> ImageMeta:
        """Write the manifest: ``meta`` with this image's volumes and table sizes. The commit point."""
        self.progress.check()
        # Said, because the data stage already shows 100 % while this takes a moment (fsyncs).
        self.progress.report(Event("finishing", message="finishing: writing the manifest"))
        self.tables.finish()
        index = self.tables.index
        meta = replace(meta, volumes=tuple(self._finished), chunk_count=len(self.chunks) // ChunkEntry.size,
                       extent_count=self.tables.rows[EXTENTS], unit_count=self.tables.rows[UNITS],
                       extent_blocks=len(index[EXTENTS]) // TableBlock.size,
                       unit_blocks=len(index[UNITS]) // TableBlock.size)
        summary = meta.summary(self.stored_bytes, self.encrypted)
        # Once this file is durably in place the image exists, not before.
        self.digest = self.manifest.commit(summary, meta.to_json(), bytes(self.chunks), self.wrap)
        return meta

    def abort(self) -> None:
        self.manifest.abort()
        self.volumes.abort()

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


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
        # Decompress and compare before writing (restic's verifyCiphertext): a compressor or memory
        # fault is caught before it is committed.
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
