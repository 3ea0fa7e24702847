"""The chunker's read side: pieces of the plan read ahead in a thread, into reused buffers.

A piece is at most PIECE_SIZE bytes of one region. The read thread reads it (narrowing a read error
down to the sector) and splits off the all-zero ZERO_BLOCKs of ``raw`` and ``gap`` regions; pread
releases the GIL, so reading overlaps the chunker's hashing (`chunker.Chunker`). Hashing stays in the
chunker's thread: XXH3 of a 16 KiB unit keeps the GIL, so hashing threads would only queue for it
(measured: hashing in two read threads made an incremental ~15 % slower than hashing here).

Read buffers are reused. A fresh 4 MiB buffer per piece made the allocator return freed memory to
the kernel and fault it in again (~200k page faults for 3 GB), which cost more than the reads; a
reused buffer also stays in the CPU cache between the read and the hashing. A buffer goes back to the
pool once the chunker is done with its piece, unless a chunk still holds a view of it (a stored run,
see `Chunker._store`): that one is freed with its chunk. Python refuses to resize a bytearray while a
view of it is alive, which is how a pinned buffer is told apart, so a buffer is never overwritten
while anything can still see it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..errors import SourceError, SourceGone
from ..extents import Extent
from ..format.c_image import CHUNK_SIZE
from ..io.reader import Reader
from .plan import Region

ZERO_BLOCK = 64 << 10
# One piece is one pread; a chunk's worth keeps syscalls and thread hand-offs few.
PIECE_SIZE = CHUNK_SIZE
# Pieces in flight (the `Ordered` depth), counting the one the chunker is working on: the read thread
# is READ_AHEAD - 1 pieces ahead, and at most READ_AHEAD read buffers are in use besides those pinned
# by chunks, whatever the disk size.
READ_AHEAD = 2
# One read thread: enough to hide the read latency; the reader must allow reads from that thread.
READ_WORKERS = 1
# Stored runs of at least this size keep a view of their read buffer (`Chunker._store`); smaller ones
# are copied. With 4 MiB chunks a chunk then pins at most four buffers, whatever the data looks like.
PIN_MIN = 1 << 20
_ZEROS = bytes(ZERO_BLOCK)


@dataclass
class Piece:
    """One piece as the read thread prepared it, for the chunker to consume in disk order."""

    length: int  # bytes of the plan it covers (progress)
    segments: list[tuple[int, memoryview]] = field(default_factory=list)  # (disk offset, bytes to store)
    zeroed: list[Extent] = field(default_factory=list)
    unreadable: list[Extent] = field(default_factory=list)
    buffer: bytearray | None = None  # the pooled read buffer the segments are views of


def add_range(ranges: list[Extent], off: int, n: int) -> None:
    """Append [off, off+n) to disk-ordered ranges, merged with the last one when they touch."""
    if ranges and ranges[-1][0] + ranges[-1][1] == off:
        ranges[-1] = (ranges[-1][0], ranges[-1][1] + n)
    else:
        ranges.append((off, n))


def nonzero_runs(off: int, data: memoryview, zeroed: list[Extent] | None) -> list[tuple[int, memoryview]]:
    """The runs of ``data`` outside its all-zero ZERO_BLOCKs (counted from its start); the zero blocks
    go to ``zeroed`` unless it is None (gaps: blank space is simply not recorded)."""
    runs: list[tuple[int, memoryview]] = []
    i = 0
    start = -1  # start of the current non-zero run within data
    while i < len(data):
        j = min(i + ZERO_BLOCK, len(data))
        # bytes() first: a memoryview compares with bytes item by item, ~40x slower than copy + memcmp.
        if bytes(data[i:j]) == _ZEROS[:j - i]:
            if start >= 0:
                runs.append((off + start, data[start:i]))
                start = -1
            if zeroed is not None:
                add_range(zeroed, off + i, j - i)
        elif start < 0:
            start = i
        i = j
    if start >= 0:
        runs.append((off + start, data[start:]))
    return runs


def plan_pieces(regions: Iterable[Region]) -> Iterator[tuple[str, int, int]]:
    """The pieces (kind, disk offset, length) to read, in disk order: regions cut into PIECE_SIZE."""
    for region in regions:
        pos, end = region.start, region.start + region.length
        while pos < end:
            n = min(PIECE_SIZE, end - pos)
            yield region.kind, pos, n
            pos += n


class PieceReader:
    """Reads and prepares pieces (`read`, from any thread) and takes their buffers back (`release`)."""

    def __init__(self, reader: Reader, sector_size: int) -> None:
        self.reader = reader
        self.sector_size = sector_size
        self.allocated = 0  # whole-size buffers made so far (a figure for tests: reuse keeps it small)
        # Readers without read_into (an image chain being merged) return fresh bytes instead.
        self._read_into: Callable[[int, memoryview], int] | None = getattr(reader, "read_into", None)
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def read(self, item: tuple[str, int, int]) -> Piece:
        """Read piece ``(kind, offset, length)``, without its zero blocks; touches no chunker state."""
        kind, pos, n = item
        piece = Piece(n)
        for off, data in self._read_runs(pos, n, piece):
            if kind == "used":
                piece.segments.append((off, data))
            else:
                piece.segments += nonzero_runs(off, data, piece.zeroed if kind == "raw" else None)
        return piece

    def release(self, piece: Piece) -> None:
        """The chunker is done with ``piece``: its buffer is reused unless a chunk still holds a view."""
        buf, piece.buffer = piece.buffer, None
        piece.segments.clear()
        if buf is None or len(buf) != PIECE_SIZE:
            return
        try:
            buf.pop()  # (shrinking by one byte keeps the allocation) raises while a view is alive
        except BufferError:
            return  # pinned by a chunk: freed with it
        buf.append(0)
        with self._lock:
            # A buffer is made only when none is free, so at most READ_AHEAD ever circulate.
            self._free.append(buf)

    def _buffer(self, n: int) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
            if n == PIECE_SIZE:
                self.allocated += 1
        # Only whole-size buffers circulate; a shorter piece finding none free gets one of its own size
        # (as many as READ_AHEAD + 1 whole-size ones would hold memory that a short piece never needs).
        return bytearray(n)

    def _read_runs(self, pos: int, n: int, piece: Piece) -> list[tuple[int, memoryview]]:
        try:
            if self._read_into is None:
                data = memoryview(self.reader.read(pos, n))
                got = len(data)
            else:
                buf = self._buffer(n)
                data = memoryview(buf)[:n]
                got = self._read_into(pos, data)
                piece.buffer = buf
        except SourceGone:
            raise
        except SourceError:  # (the buffer, if any, is not reused: a rare path)
            return self._read_sectorwise(pos, n, piece.unreadable)
        if got != n:
            raise SourceError(path=getattr(self.reader, "path", "source"),
                              detail=f"short read at byte {pos}: disk smaller than its partition table says?")
        return [(pos, data)]

    def _read_sectorwise(self, pos: int, n: int, unreadable: list[Extent]) -> list[tuple[int, memoryview]]:
        """After a failed read: sector by sector, so only the truly unreadable sectors are lost."""
        # bytearrays grow in place: concatenating bytes would copy each run once per sector (GBs per piece).
        runs: list[tuple[int, bytearray]] = []
        ss = self.sector_size
        off = pos
        while off < pos + n:
            m = min(ss, pos + n - off)
            try:
                data = self.reader.read(off, m)
            except SourceGone:
                raise
            except SourceError:
                add_range(unreadable, off, m)
                off += m
                continue
            if len(data) != m:  # as in `_read_runs`: else a hole neither stored nor recorded unreadable
                raise SourceError(path=getattr(self.reader, "path", "source"),
                                  detail=f"short read at byte {off}: disk smaller than its partition "
                                         "table says?")
            if runs and runs[-1][0] + len(runs[-1][1]) == off:
                runs[-1][1].extend(data)
            else:
                runs.append((off, bytearray(data)))
            off += m
        if not runs and pos >= ss:
            self._check_alive(pos)
        return [(off, memoryview(data)) for off, data in runs]

    def _check_alive(self, pos: int) -> None:
        """A whole piece unreadable: a bad area, or a disk that stopped answering (pulled out while the
        kernel still has it, dead). Its first sector, read when the job began, tells them apart: were
        it read around, the image would be committed holding nothing of the rest of the disk."""
        try:
            self.reader.read(0, self.sector_size)
        except SourceError:
            raise SourceGone(path=getattr(self.reader, "path", "source"),
                             detail=f"every read fails from byte {pos} on, its first sector's too "
                                    "(unplugged?)") from None
