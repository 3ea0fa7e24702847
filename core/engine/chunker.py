"""Turns planned regions into 4 MiB chunks of disk data, with their extent lists.

Reads are bounded (one piece of at most CHUNK_SIZE at a time). All-zero 64 KiB blocks of ``raw``
regions become zero extents and those of ``gap`` regions are skipped, so a blank MSR or empty
unpartitioned space costs nothing in the image. Source read errors are narrowed down to the sector
and recorded as unreadable; the bytes around them are still stored, and nothing is zero-filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..disk.model import Extent
from ..errors import SourceError
from ..format.c_image import CHUNK_SIZE
from ..io.reader import Reader
from .plan import Region

ZERO_BLOCK = 64 << 10
_ZEROS = bytes(ZERO_BLOCK)


@dataclass
class Chunk:
    number: int
    data: bytearray = field(default_factory=bytearray)
    extents: list[tuple[int, int, int]] = field(default_factory=list)  # (disk offset, length, chunk offset)


class Chunker:
    def __init__(self, reader: Reader, regions: list[Region], sector_size: int,
                 on_read: Callable[[int], None] = lambda n: None) -> None:
        self.reader = reader
        self.regions = regions
        self.sector_size = sector_size
        self.on_read = on_read
        self.zeroed: list[Extent] = []
        self.unreadable: list[Extent] = []
        self._cur = Chunk(0)

    def __iter__(self) -> Iterator[Chunk]:
        for region in self.regions:
            pos, end = region.start, region.start + region.length
            while pos < end:
                n = min(CHUNK_SIZE, end - pos)
                for off, data in self._read_runs(pos, n):
                    if region.kind == "used":
                        yield from self._append(off, memoryview(data))
                    else:
                        yield from self._append_nonzero(off, memoryview(data), region.kind == "raw")
                self.on_read(n)
                pos += n
        if self._cur.data:
            yield self._cur

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

    def _append_nonzero(self, off: int, data: memoryview, record_zeros: bool) -> Iterator[Chunk]:
        i = 0
        start = -1  # start of the current non-zero run within data
        while i < len(data):
            j = min(i + ZERO_BLOCK, len(data))
            zero = data[i:j] == _ZEROS[:j - i]
            if zero:
                if start >= 0:
                    yield from self._append(off + start, data[start:i])
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
            yield from self._append(off + start, data[start:])

    def _append(self, off: int, data: memoryview) -> Iterator[Chunk]:
        while len(data):
            cur = self._cur
            take = min(CHUNK_SIZE - len(cur.data), len(data))
            if cur.extents and cur.extents[-1][0] + cur.extents[-1][1] == off:
                d, n, c = cur.extents[-1]
                cur.extents[-1] = (d, n + take, c)
            else:
                cur.extents.append((off, take, len(cur.data)))
            cur.data += data[:take]
            off += take
            data = data[take:]
            if len(cur.data) == CHUNK_SIZE:
                yield cur
                self._cur = Chunk(cur.number + 1)
