"""Turns planned regions into 4 MiB chunks of changed disk data, and the image's extent and unit tables.

Reads are bounded (pieces of at most CHUNK_SIZE, READ_AHEAD of them at a time). All-zero 64 KiB
blocks of ``raw`` regions become zero extents and those of ``gap`` regions are skipped, so a blank MSR
or empty unpartitioned space costs nothing. Source read errors are narrowed down to the sector and recorded as
unreadable; the bytes around them are still stored, and nothing is zero-filled.

Change tracking: stored data is cut at HASH_UNIT-aligned disk offsets into units; each unit gets a
128-bit XXH3 hash of its stored bytes, seeded by which bytes of the unit are stored (so a block that
became free, or a zero block that became used, never looks unchanged). With a parent index, a unit
whose hash equals the parent's is not stored again: the child's extents point at the parent's copy.
Everything streams in disk order; the parent's tables are searched in place (a forward cursor over
the packed rows), never loaded into Python objects.

Reads and zero-block tests run ahead in a thread of their own (`pieces`). Whole units are hashed
in bulk into packed unit-table rows, which are compared with the parent's rows in place: a run of
units that did not change is one bytes comparison and one pass over the parent's extents.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import xxhash

from ..extents import Extent
from ..format.c_image import CHUNK_SIZE, HASH_UNIT, ExtentEntry, UnitEntry
from ..io.reader import Reader
from .pieces import PIN_MIN, READ_AHEAD, READ_WORKERS, Piece, PieceReader, add_range, plan_pieces
from .pipeline import Ordered
from .plan import Region

__all__ = ["Chunk", "Chunker", "ParentIndex", "unit_rows"]

_EXT = ExtentEntry.codec
_UNIT = UnitEntry.codec
_ROW = _UNIT.size


@dataclass
class Chunk:
    """Up to CHUNK_SIZE bytes to store, kept as views of the read buffers (copies for runs under
    PIN_MIN) until a worker joins them."""

    number: int
    pieces: list[memoryview] = field(default_factory=list)
    size: int = 0

    def raw(self) -> bytes:
        return b"".join(self.pieces)


def unit_rows(off: int, data: memoryview) -> bytes:
    """Packed UnitEntry rows (index, unseeded XXH3-128) of the units that lie whole inside ``data``
    (at disk offset ``off``), one hash call per unit and no per-unit objects kept."""
    first = -(-off // HASH_UNIT)
    rel = first * HASH_UNIT - off
    if rel >= len(data):
        return b""
    digest, pack = xxhash.xxh3_128_digest, _UNIT.pack
    return b"".join([pack(first + i, digest(data[rel + i * HASH_UNIT:rel + (i + 1) * HASH_UNIT]))
                     for i in range((len(data) - rel) // HASH_UNIT)])


class ParentIndex:
    """The parent image's unit and extent tables, searched in place with forward cursors (inputs
    arrive in disk order, so every search starts where the last one ended).

    The parent's image references are shifted by one (`extents_in`): the child's chain is the parent
    followed by the parent's own chain, so the parent's "this image" (0) is the child's 1.
    """

    def __init__(self, units: bytes, extents: bytes) -> None:
        self.units = units
        self.extents = extents
        self._u = 0
        self._e = 0
        self.n_units = len(units) // _ROW
        self.n_extents = len(extents) // _EXT.size
        # The unit indices alone, for bisection: on little-endian machines a strided view of the
        # table's first column (no copy: the table of a large disk is hundreds of MB); elsewhere a
        # byte-swapped copy of that column.
        table = memoryview(units)[:self.n_units * _ROW]
        self._index: Sequence[int]
        if sys.byteorder == "little":
            self._index = table.cast("Q")[::_ROW // 8]
        else:
            rows = array("Q")
            rows.frombytes(table)
            rows.byteswap()  # the table is little-endian
            self._index = rows[::_ROW // 8]

    def _seek(self, index: int) -> int:
        """Row of the first parent unit >= ``index`` (the cursor moves forward only)."""
        self._u = bisect_left(self._index, index, self._u)
        return self._u

    def unit_hash(self, index: int) -> bytes | None:
        u = self._seek(index)
        if u < self.n_units and self._index[u] == index:
            return self.units[u * _ROW + 8:(u + 1) * _ROW]
        return None

    def same_rows(self, rows: bytes) -> bool:
        """Whether the parent has exactly these packed rows (consecutive units) for their units. One
        bytes comparison; it checks the unit indices too, so it holds only when the parent has every
        one of these units with the same hash (the common case of a whole piece left unchanged)."""
        if not rows:
            return True
        u = self._seek(_UNIT.unpack_from(rows)[0])
        return self.units[u * _ROW:u * _ROW + len(rows)] == rows

    def unchanged(self, rows: bytes) -> list[bool]:
        """For each packed row (consecutive units), whether the parent has the same hash for it."""
        out: list[bool] = []
        if not rows:
            return out
        u = self._seek(_UNIT.unpack_from(rows)[0])
        table = self.units
        for i in range(len(rows) // _ROW):
            row = rows[i * _ROW:(i + 1) * _ROW]
            # Rows line up when the parent has every unit of the run; a row that differs may still
            # mean a missing parent unit before it, so it is looked up properly.
            out.append(table[(u + i) * _ROW:(u + i + 1) * _ROW] == row
                       or self.unit_hash(_UNIT.unpack_from(row)[0]) == row[8:])
        return out

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
        self.piece_reader = PieceReader(reader, sector_size)
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

    def __iter__(self) -> Iterator[Chunk]:
        # READ_AHEAD pieces in flight, this one included; pieces arrive here in disk order.
        pieces = Ordered(self.piece_reader.read, plan_pieces(self.regions), depth=READ_AHEAD,
                         workers=READ_WORKERS)
        for piece in pieces:
            self._take(piece)
            self.piece_reader.release(piece)
            yield from self._drain()
            self.on_read(piece.length)
        self._finish_unit()
        self._flush_extent()
        yield from self._drain()
        if self._cur.size:
            yield self._cur

    def _take(self, piece: Piece) -> None:
        """Everything of one piece; its views die with this call's locals, so `release` can reuse
        the buffer."""
        for off, n in piece.unreadable:
            add_range(self.unreadable, off, n)
        for off, n in piece.zeroed:
            add_range(self.zeroed, off, n)
        for off, data in piece.segments:
            self._feed(off, data)
        # A unit left pending waits for the next piece: a copy (< 16 KiB) lets this buffer be reused.
        self._pieces = [(off, memoryview(bytes(data))) for off, data in self._pieces]

    def _drain(self) -> Iterator[Chunk]:
        while self._ready:
            yield self._ready.pop(0)

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
        """Whole units (the common case): a run of changed units is stored in one piece and a run of
        unchanged ones refers to the parent's extents in one pass."""
        rows = unit_rows(off, data)
        self.units += rows
        parent = self.parent
        if parent is None:
            self._store(off, data)
            return
        if parent.same_rows(rows):  # fast path: nothing changed here
            self._reuse(off, off + len(data))
            return
        same = parent.unchanged(rows)
        i = 0
        while i < len(same):
            j = i + 1
            while j < len(same) and same[j] == same[i]:
                j += 1
            if same[i]:
                self._reuse(off + i * HASH_UNIT, off + j * HASH_UNIT)
            else:
                self._store(off + i * HASH_UNIT, data[i * HASH_UNIT:j * HASH_UNIT])
            i = j

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
