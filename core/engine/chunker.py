"""Turns planned regions into 4 MiB chunks of changed disk data, and the image's extent and unit tables.

Reads are bounded (pieces of at most CHUNK_SIZE, READ_AHEAD of them at a time). All-zero 64 KiB
blocks of ``raw`` regions become zero extents and those of ``gap`` regions are skipped, so a blank MSR
or empty unpartitioned space costs nothing. Source read errors are narrowed down to the sector and recorded as
unreadable; the bytes around them are still stored, and nothing is zero-filled.

Change tracking: stored data is cut at HASH_UNIT-aligned disk offsets into units; each unit gets a
128-bit XXH3 hash of its stored bytes, seeded by which bytes of the unit are stored (so a block that
became free, or a zero block that became used, never looks unchanged). With a parent (`ParentUnits`),
a unit whose hash equals the chain's current one is not stored and not recorded at all: the child
inherits it (FORMAT.md "Chains"). A changed unit is recorded whole: its hash, extents of its stored
bytes and holes for the rest of it; a unit the parent had and the child has not gets a tombstone
and a hole. So the child's tables grow with what changed, never with the disk.

Everything streams in disk order; tables go to a sink (`TableSink`) as they grow, the parent's
units come from a sliding window over the chain's sorted tables. Reads and zero-block tests run
ahead in a thread of their own (`pieces`). Whole units are hashed in bulk into packed unit-table
rows, compared with the parent's rows in place: a run of units that did not change is one bytes
comparison.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import xxhash

from ..extents import Extent
from ..format.c_image import CHUNK_SIZE, HASH_UNIT, HOLE_REF, TOMBSTONE, ExtentEntry, UnitEntry
from ..format.tables import EXTENTS, UNITS, TableKind
from ..io.reader import Reader
from .pieces import PIN_MIN, READ_AHEAD, READ_WORKERS, Piece, PieceReader, add_range, plan_pieces
from .overlay import index_column as _index_column
from .pipeline import Ordered
from .plan import Region

__all__ = ["Chunk", "Chunker", "MemoryTables", "ParentUnits", "TableSink", "unit_rows"]

_EXT = ExtentEntry.codec
_UNIT = UnitEntry.codec
_ROW = _UNIT.size
# A hole entry's length field is 32 bits: longer runs of holes are cut at this (a multiple of units).
MAX_HOLE = 1 << 31


class TableSink(Protocol):
    """Where the chunker's packed rows go, in key order (`format.tables.TableWriter`, or memory)."""

    def add(self, kind: TableKind, rows: bytes | bytearray) -> None: ...


class MemoryTables:
    """A sink that keeps the rows (tests, and small tools)."""

    def __init__(self) -> None:
        self.rows: dict[TableKind, bytearray] = {EXTENTS: bytearray(), UNITS: bytearray()}

    def add(self, kind: TableKind, rows: bytes | bytearray) -> None:
        self.rows[kind] += rows

    @property
    def extents(self) -> bytes:
        return bytes(self.rows[EXTENTS])

    @property
    def units(self) -> bytes:
        return bytes(self.rows[UNITS])


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


class ParentUnits:
    """The parent chain's current unit rows (`overlay.resolved_units`), searched with a forward
    cursor over a window of them: inputs arrive in unit order, so the window slides and memory stays
    at a block or two of rows whatever the disk size.

    It also finds the units the parent has and the child no longer has ("gone"): the child's
    metadata must say so (a tombstone and a hole), or they would be inherited. They are handed to
    ``on_gone`` a window at a time, as the cursor passes them (kept in ``gone`` without one): a
    wiped partition must not become one list of its units.
    """

    def __init__(self, batches: Iterator[bytes], on_gone: Callable[[list[int]], None] | None = None) -> None:
        self._batches = batches
        self._rows = b""
        self._col: Sequence[int] = ()
        self._pos = 0  # first row not yet passed
        self._matched = False  # row _pos was the child's unit too
        self._done = False
        self.on_gone = on_gone
        self.gone: list[int] = []

    def _load(self) -> bool:
        """Append the next batch to the window, dropping the rows already passed; False at the end."""
        if self._done:
            return False
        batch = next(self._batches, None)
        if batch is None:
            self._done = True
            return False
        self._rows = self._rows[self._pos * _ROW:] + batch
        self._pos = 0
        self._col = _index_column(self._rows)
        return True

    def _fill(self, index: int) -> None:
        """Make the window hold every row up to unit ``index``, keeping the rows from the cursor on
        (for a run of the child's units: at most a piece's worth more than a batch)."""
        while (not self._col or self._col[-1] < index) and self._load():
            pass

    def _advance(self, index: int) -> int:
        """Move to the first row >= ``index``; the rows passed that the child did not have are gone.
        Batches wholly below ``index`` are passed one at a time, never held together."""
        while True:
            p = bisect_left(self._col, index, self._pos)
            self._pass(p)
            if p < len(self._col) or not self._load():
                return self._pos

    def _pass(self, p: int) -> None:
        """Move the cursor to row ``p``, noting the rows passed that the child did not have."""
        found = [self._col[r] for r in range(self._pos + (1 if self._matched else 0), p)
                 if self._rows[r * _ROW + 8:(r + 1) * _ROW] != TOMBSTONE]
        self._pos = p
        self._matched = False
        if found:
            if self.on_gone is not None:
                self.on_gone(found)
            else:
                self.gone += found

    def unit_hash(self, index: int) -> bytes | None:
        p = self._advance(index)
        if p < len(self._col) and self._col[p] == index:
            self._matched = True
            h = self._rows[p * _ROW + 8:(p + 1) * _ROW]
            return None if h == TOMBSTONE else h
        return None

    def same_rows(self, rows: bytes) -> bool:
        """Whether the parent has exactly these packed rows (consecutive units) for their units. One
        bytes comparison; it checks the unit indices too, so it holds only when the parent has every
        one of these units with the same hash (the common case of a whole piece left unchanged)."""
        if not rows:
            return True
        self._advance(_UNIT.unpack_from(rows)[0])
        self._fill(_UNIT.unpack_from(rows, len(rows) - _ROW)[0])
        p = self._pos
        if self._rows[p * _ROW:p * _ROW + len(rows)] != rows:
            return False
        self._pos = p + len(rows) // _ROW - 1
        self._matched = True
        return True

    def unchanged(self, rows: bytes) -> list[bool]:
        """For each packed row (consecutive units), whether the parent has the same hash for it."""
        return [self.unit_hash(_UNIT.unpack_from(rows, at)[0]) == rows[at + 8:at + _ROW]
                for at in range(0, len(rows), _ROW)]

    def finish(self) -> None:
        """The child has no more units: every parent unit left is gone (a window at a time)."""
        while True:
            self._pass(len(self._col))
            if not self._load():
                return


class Chunker:
    def __init__(self, reader: Reader, regions: Iterable[Region], sector_size: int, tables: TableSink,
                 on_read: Callable[[int], None] = lambda n: None, parent: ParentUnits | None = None) -> None:
        self.reader = reader
        self.regions = regions
        self.sector_size = sector_size
        self.tables = tables
        self.on_read = on_read
        self.parent = parent
        if parent is not None:
            parent.on_gone = self._bury  # in unit order, before the unit being looked up is recorded
        self.piece_reader = PieceReader(reader, sector_size)
        self.zeroed: list[Extent] = []
        self.unreadable: list[Extent] = []
        self.reused_bytes = 0
        self.extent_rows = 0
        self.unit_rows = 0
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
        if self.parent is not None:
            self.parent.finish()
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

    def _units(self, rows: bytes | bytearray) -> None:
        if rows:
            self.tables.add(UNITS, rows)
            self.unit_rows += len(rows) // _ROW

    def _bury(self, gone: list[int]) -> None:
        """Parent units the child no longer has: a tombstone each, and a hole over each (in order:
        they all lie before the unit being looked at)."""
        if not gone:
            return
        self._units(b"".join(_UNIT.pack(u, TOMBSTONE) for u in gone))
        for u in gone:
            self._hole(u * HASH_UNIT, HASH_UNIT)

    def _full_units(self, off: int, data: memoryview) -> None:
        """Whole units (the common case): a run of changed units is stored in one piece; a run of
        unchanged ones is inherited and costs nothing."""
        rows = unit_rows(off, data)
        parent = self.parent
        if parent is None:
            self._units(rows)
            self._store(off, data)
            return
        same_all = parent.same_rows(rows)
        same = [True] * (len(rows) // _ROW) if same_all else parent.unchanged(rows)
        i = 0
        while i < len(same):
            j = i + 1
            while j < len(same) and same[j] == same[i]:
                j += 1
            if same[i]:
                self.reused_bytes += (j - i) * HASH_UNIT
            else:
                self._units(rows[i * _ROW:j * _ROW])
                self._store(off + i * HASH_UNIT, data[i * HASH_UNIT:j * HASH_UNIT])
            i = j

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
            # The coverage is the unit's maximal runs of stored bytes: runs that touch are one, however
            # they were read (two regions, two extents of a merge's source), so the same bytes always
            # hash the same; a unit covered whole hashes as one read whole does.
            runs: list[list[int]] = []
            for off, data in pieces:
                buf[off - base:off - base + len(data)] = data
                if runs and runs[-1][1] == off - base:
                    runs[-1][1] += len(data)
                else:
                    runs.append([off - base, off - base + len(data)])
            if runs == [[0, HASH_UNIT]]:
                h = xxhash.xxh3_128_digest(bytes(buf))
            else:
                cover = b"".join(struct.pack("<HH", a, b - a) for a, b in runs)
                h = xxhash.xxh3_128_digest(bytes(buf), seed=xxhash.xxh3_64_intdigest(cover) | 1)
        parent = self.parent
        if parent is not None:
            same = parent.unit_hash(unit) == h
            if same:
                self.reused_bytes += sum(len(data) for _, data in pieces)
                return
        self._units(_UNIT.pack(unit, h))
        pos = base
        for off, data in pieces:
            if parent is not None and off > pos:
                self._hole(pos, off - pos)  # the child says what of the unit is not stored, too
            self._store(off, data)
            pos = off + len(data)
        if parent is not None and pos < base + HASH_UNIT:
            self._hole(pos, base + HASH_UNIT - pos)

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

    def _hole(self, off: int, n: int) -> None:
        # The disk's last unit may reach past its end: what is not on the disk needs no hole.
        n = min(off + n, self.reader.size) - off
        if n <= 0:
            return
        last = self._last_ext
        if last and last[4] == HOLE_REF and last[0] + last[1] == off and last[1] + n <= MAX_HOLE:
            last[1] += n
            return
        self._flush_extent()
        self._last_ext = [off, n, 0, 0, HOLE_REF]

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
            self.tables.add(EXTENTS, _EXT.pack(off, n, chunk, coff, ref, 0))
            self.extent_rows += 1
            self._last_ext = []
