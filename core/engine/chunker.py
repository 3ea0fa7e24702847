"""Turns planned regions into 4 MiB chunks of changed disk data, and the image's extent and unit tables.

Reads are bounded (one piece of at most CHUNK_SIZE at a time). All-zero 64 KiB blocks of ``raw``
regions become zero extents and those of ``gap`` regions are skipped, so a blank MSR or empty
unpartitioned space costs nothing. Source read errors are narrowed down to the sector and recorded as
unreadable; the bytes around them are still stored, and nothing is zero-filled.

Change tracking: stored data is cut at HASH_UNIT-aligned disk offsets into units; each unit gets a
128-bit XXH3 hash of its stored bytes, seeded by which bytes of the unit are stored (so a block that
became free, or a zero block that became used, never looks unchanged). With a parent index, a unit
whose hash equals the parent's is not stored again: the child's extents point at the parent's copy.
Everything streams in disk order; the parent's tables are walked with forward cursors, never loaded
into Python objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Iterator

import xxhash

from ..disk.model import Extent
from ..errors import SourceError
from ..format.c_image import CHUNK_SIZE, HASH_UNIT, ExtentEntry, UnitEntry
from ..io.reader import Reader
from .pipeline import Ordered
from .plan import Region

ZERO_BLOCK = 64 << 10
# Pieces of at least this size keep a view of their read buffer; smaller ones are copied. With 4 MiB
# chunks a chunk then pins at most four buffers, whatever the data looks like.
PIN_MIN = 1 << 20
# Pieces read ahead of the chunker (4 MiB each): enough to hide the read latency, small for memory.
READ_AHEAD = 2
_ZEROS = bytes(max(ZERO_BLOCK, HASH_UNIT))
_EXT = struct.Struct("<QIIIHH")  # ExtentEntry layout, for speed
_UNIT = struct.Struct("<Q16s")  # UnitEntry layout
assert _EXT.size == ExtentEntry.size and _UNIT.size == UnitEntry.size


@dataclass
class Chunk:
    """Up to CHUNK_SIZE bytes to store, kept as views of the read buffers until a worker joins them."""

    number: int
    pieces: list[memoryview] = field(default_factory=list)
    size: int = 0

    def raw(self) -> bytes:
        return b"".join(self.pieces)


class ParentIndex:
    """The parent image's unit and extent tables, read with forward cursors (inputs arrive in order).

    ``ref_shift`` is added to the parent's image references: the child's chain is the parent followed
    by the parent's own chain, so the parent's "this image" (0) is the child's 1.
    """

    def __init__(self, units: bytes, extents: bytes) -> None:
        self.units = units
        self.extents = extents
        self._u = 0
        self._e = 0
        self.n_units = len(units) // _UNIT.size
        self.n_extents = len(extents) // _EXT.size

    def unit_hash(self, index: int) -> bytes | None:
        while self._u < self.n_units and _UNIT.unpack_from(self.units, self._u * _UNIT.size)[0] < index:
            self._u += 1
        if self._u < self.n_units:
            idx, h = _UNIT.unpack_from(self.units, self._u * _UNIT.size)
            if idx == index:
                return bytes(h)
        return None

    def extents_in(self, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
        """Parent extents clipped to [start, end): (disk offset, length, chunk, chunk offset, ref)."""
        while self._e < self.n_extents:
            off, n, *_ = _EXT.unpack_from(self.extents, self._e * _EXT.size)
            if off + n > start:
                break
            self._e += 1
        i = self._e
        while i < self.n_extents:
            off, n, chunk, coff, ref, _ = _EXT.unpack_from(self.extents, i * _EXT.size)
            if off >= end:
                break
            lo, hi = max(off, start), min(off + n, end)
            if lo < hi:
                yield lo, hi - lo, chunk, coff + lo - off, ref + 1
            i += 1


class Chunker:
    def __init__(self, reader: Reader, regions: list[Region], sector_size: int,
                 on_read: Callable[[int], None] = lambda n: None, parent: ParentIndex | None = None) -> None:
        self.reader = reader
        self.regions = regions
        self.sector_size = sector_size
        self.on_read = on_read
        self.parent = parent
        self.zeroed: list[Extent] = []
        self.unreadable: list[Extent] = []
        self.extents = bytearray()  # packed ExtentEntry, disk order
        self.units = bytearray()  # packed UnitEntry, unit order
        self.reused_bytes = 0
        self._cur = Chunk(0)
        self._ready: list[Chunk] = []
        self._unit = -1
        self._pieces: list[tuple[int, memoryview]] = []  # (disk offset, bytes) of the pending unit
        self._last_ext: list[int] = []  # the last extent written, to merge contiguous ones

    # --- reading --------------------------------------------------------------------------------

    def _read_plan(self) -> Iterator[tuple[str, int, int]]:
        for region in self.regions:
            pos, end = region.start, region.start + region.length
            while pos < end:
                n = min(CHUNK_SIZE, end - pos)
                yield region.kind, pos, n
                pos += n

    def _read_piece(self, item: tuple[str, int, int]) -> tuple[str, int, list[tuple[int, bytes]]]:
        kind, pos, n = item
        return kind, n, self._read_runs(pos, n)

    def __iter__(self) -> Iterator[Chunk]:
        # Reads run one or two pieces ahead in a thread of their own (pread releases the GIL), so
        # hashing and chunking never wait for the disk; at most READ_AHEAD pieces are held.
        for kind, n, runs in Ordered(self._read_piece, self._read_plan(), depth=READ_AHEAD, workers=1):
            for off, data in runs:
                view = memoryview(data)
                if kind == "used":
                    self._feed(off, view)
                else:
                    self._feed_nonzero(off, view, kind == "raw")
                yield from self._drain()
            self.on_read(n)
        self._finish_unit()
        self._flush_extent()
        yield from self._drain()
        if self._cur.size:
            yield self._cur

    def _drain(self) -> Iterator[Chunk]:
        while self._ready:
            yield self._ready.pop(0)

    def _read_runs(self, pos: int, n: int) -> list[tuple[int, bytes]]:
        try:
            data = self.reader.read(pos, n)
        except SourceError:
            return self._read_sectorwise(pos, n)
        if len(data) != n:
            raise SourceError(path=getattr(self.reader, "path", "source"),
                              detail=f"short read at byte {pos}: disk smaller than its partition table says?")
        return [(pos, data)]

    def _read_sectorwise(self, pos: int, n: int) -> list[tuple[int, bytes]]:
        """After a failed read: sector by sector, so only the truly unreadable sectors are lost."""
        runs: list[tuple[int, bytes]] = []
        ss = self.sector_size
        off = pos
        while off < pos + n:
            m = min(ss, pos + n - off)
            try:
                data = self.reader.read(off, m)
            except SourceError:
                if self.unreadable and self.unreadable[-1][0] + self.unreadable[-1][1] == off:
                    self.unreadable[-1] = (self.unreadable[-1][0], self.unreadable[-1][1] + m)
                else:
                    self.unreadable.append((off, m))
                off += m
                continue
            if runs and runs[-1][0] + len(runs[-1][1]) == off:
                runs[-1] = (runs[-1][0], runs[-1][1] + data)
            else:
                runs.append((off, data))
            off += m
        return runs

    def _feed_nonzero(self, off: int, data: memoryview, record_zeros: bool) -> None:
        i = 0
        start = -1  # start of the current non-zero run within data
        while i < len(data):
            j = min(i + ZERO_BLOCK, len(data))
            if data[i:j] == _ZEROS[:j - i]:
                if start >= 0:
                    self._feed(off + start, data[start:i])
                    start = -1
                if record_zeros:
                    if self.zeroed and self.zeroed[-1][0] + self.zeroed[-1][1] == off + i:
                        self.zeroed[-1] = (self.zeroed[-1][0], self.zeroed[-1][1] + j - i)
                    else:
                        self.zeroed.append((off + i, j - i))
            elif start < 0:
                start = i
            i = j
        if start >= 0:
            self._feed(off + start, data[start:])

    # --- units ----------------------------------------------------------------------------------

    def _feed(self, off: int, data: memoryview) -> None:
        """Stored bytes at disk offset ``off``, cut at unit boundaries; whole units go in bulk."""
        while len(data):
            unit, rel = divmod(off, HASH_UNIT)
            if rel == 0 and len(data) >= HASH_UNIT:
                self._finish_unit()  # anything pending belongs to an earlier unit
                n = len(data) // HASH_UNIT * HASH_UNIT
                self._full_units(off, data[:n])
                off += n
                data = data[n:]
                continue
            take = min(len(data), HASH_UNIT - rel)
            if unit != self._unit:
                self._finish_unit()
                self._unit = unit
            self._pieces.append((off, data[:take]))
            off += take
            data = data[take:]

    def _full_units(self, off: int, data: memoryview) -> None:
        """Whole units (the common case): one hash call each; a run of changed units is stored in one
        piece and a run of unchanged ones refers to the parent's extents in one pass."""
        first = off // HASH_UNIT
        parent = self.parent
        digest = xxhash.xxh3_128_digest
        pack = _UNIT.pack
        units = self.units
        run = -1  # start (in units) of the current run of changed units
        same = -1  # start of the current run of unchanged units
        count = len(data) // HASH_UNIT
        for i in range(count):
            h = digest(data[i * HASH_UNIT:(i + 1) * HASH_UNIT])
            units += pack(first + i, h)
            if parent is not None and parent.unit_hash(first + i) == h:
                if run >= 0:
                    self._store(off + run * HASH_UNIT, data[run * HASH_UNIT:i * HASH_UNIT])
                    run = -1
                if same < 0:
                    same = i
            else:
                if same >= 0:
                    self._reuse(off + same * HASH_UNIT, off + i * HASH_UNIT)
                    same = -1
                if run < 0:
                    run = i
        if run >= 0:
            self._store(off + run * HASH_UNIT, data[run * HASH_UNIT:])
        if same >= 0:
            self._reuse(off + same * HASH_UNIT, off + count * HASH_UNIT)

    def _reuse(self, start: int, end: int) -> None:
        """Disk bytes [start, end) are unchanged: point at the parent's copy."""
        assert self.parent is not None  # only called with a parent
        for e_off, n, chunk, coff, ref in self.parent.extents_in(start, end):
            self._extent(e_off, n, chunk, coff, ref)
            self.reused_bytes += n

    def _finish_unit(self) -> None:
        if not self._pieces:
            return
        unit, pieces = self._unit, self._pieces
        self._pieces = []
        base = unit * HASH_UNIT
        if len(pieces) == 1 and len(pieces[0][1]) == HASH_UNIT:
            h = xxhash.xxh3_128_digest(pieces[0][1])
        else:
            buf = bytearray(HASH_UNIT)
            cover = bytearray()
            for off, data in pieces:
                buf[off - base:off - base + len(data)] = data
                cover += struct.pack("<HH", off - base, len(data))
            h = xxhash.xxh3_128_digest(bytes(buf), seed=xxhash.xxh3_64_intdigest(bytes(cover)) | 1)
        self.units += _UNIT.pack(unit, h)
        if self.parent is not None and self.parent.unit_hash(unit) == h:
            self._reuse(base, base + HASH_UNIT)
            return
        for off, data in pieces:
            self._store(off, data)

    # --- chunks and extents ---------------------------------------------------------------------

    def _store(self, off: int, data: memoryview) -> None:
        while len(data):
            cur = self._cur
            take = min(CHUNK_SIZE - cur.size, len(data))
            self._extent(off, take, cur.number, cur.size, 0)
            # A view pins its whole 4 MiB read buffer: small pieces (scattered changes of an
            # incremental, fragmented files) are copied so a chunk never holds hundreds of buffers.
            cur.pieces.append(data[:take] if take >= PIN_MIN else memoryview(bytes(data[:take])))
            cur.size += take
            off += take
            data = data[take:]
            if cur.size == CHUNK_SIZE:
                self._ready.append(cur)
                self._cur = Chunk(cur.number + 1)

    def _extent(self, off: int, n: int, chunk: int, coff: int, ref: int) -> None:
        last = self._last_ext
        if last and last[0] + last[1] == off and last[2] == chunk and last[3] + last[1] == coff \
                and last[4] == ref and last[1] + n <= CHUNK_SIZE:
            last[1] += n
            return
        self._flush_extent()
        self._last_ext = [off, n, chunk, coff, ref]

    def _flush_extent(self) -> None:
        if self._last_ext:
            off, n, chunk, coff, ref = self._last_ext
            self.extents += _EXT.pack(off, n, chunk, coff, ref, 0)
            self._last_ext = []
