"""A restore point's disk state and unit hashes, resolved through its chain by streaming merges.

A version-2 image records only its own changes (FORMAT.md "Chains"): extents of its own chunks,
holes where an ancestor's bytes are no longer part of the disk, unit hashes of the units it stored
and tombstones of units that hold nothing any more. Everything else is its parent's state. The
point's state is therefore its own table laid over its parent's, laid over the grandparent's, ...
down to the full image (or to a version-1 image, whose tables already describe the whole disk).

Each table is sorted, so the layers merge in one pass (`overlay`, `overlay_units`), holding one
block of each image at a time: memory grows with the chain's length, not with the disk. Extent
entries come out as ``(disk offset, length, ref, chunk, chunk offset)`` with ``ref`` the image's
place in the chain (0 = the point); unit rows as packed `UnitEntry` rows, in blocks.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from typing import Callable, Iterator, Sequence, TypeVar

from ..format.c_image import HOLE_REF, TABLE_BLOCK_ROWS, ExtentEntry, UnitEntry
from ..format.manifest import Manifest

Entry = tuple[int, int, int, int, int]
T = TypeVar("T")
END = 1 << 64
_EXT = ExtentEntry.codec
_ROW = UnitEntry.size


def own_extents(m: Manifest, ref: int, start: int = 0, end: int = END) -> Iterator[Entry]:
    """Image ``m``'s own extent rows meeting [start, end), clipped to it; ``ref`` is the image's
    place in the chain (version-1 rows, which name other images, are shifted by it)."""
    first = True
    for rows in m.extents.blocks(start):
        view = memoryview(rows)
        if first and start:
            # A read of a few KiB must not walk a block of 4096 rows: bisect to the row before it.
            first = False
            view = view[max(0, bisect_right(index_column(rows), start) - 1) * _EXT.size:]
        for off, n, chunk, coff, r, _ in _EXT.iter_unpack(view):
            if off + n <= start:
                continue
            if off >= end:
                return
            lo, hi = max(off, start), min(off + n, end)
            yield lo, hi - lo, HOLE_REF if r == HOLE_REF else ref + r, chunk, coff + lo - off


def _clip(e: Entry, lo: int, hi: int) -> Entry:
    return lo, hi - lo, e[2], e[3], e[4] + lo - e[0]


def overlay(top: Iterator[Entry], bottom: Iterator[Entry]) -> Iterator[Entry]:
    """``top`` laid over ``bottom``: top's entries whole, bottom's where top has none; both sorted
    and free of overlaps, and so is the result."""
    t = next(top, None)
    for b in bottom:
        b_start, b_end = b[0], b[0] + b[1]
        while t is not None and t[0] + t[1] <= b_start:
            yield t
            t = next(top, None)
        pos = b_start
        while pos < b_end:
            if t is None or t[0] >= b_end:
                yield _clip(b, pos, b_end)
                break
            if t[0] > pos:
                yield _clip(b, pos, t[0])
            pos = max(pos, t[0] + t[1])
            if t[0] + t[1] <= b_end:
                yield t
                t = next(top, None)
            else:
                break  # t reaches past b: it is yielded with what comes after
    while t is not None:
        yield t
        t = next(top, None)


def layers(manifests: Sequence[Manifest], upto: int | None = None) -> int:
    """How many images of the chain (from the point) take part in its state: down to the full one,
    or to the first version-1 image (its tables describe the whole disk), and not past ``upto``."""
    last = len(manifests) - 1 if upto is None else min(upto, len(manifests) - 1)
    for i in range(last + 1):
        if not manifests[i].is_delta:
            return i + 1
    return last + 1


def resolved(manifests: Sequence[Manifest], start: int = 0, end: int = END,
             upto: int | None = None) -> Iterator[Entry]:
    """The data extents of the point's disk in [start, end), in disk order. With ``upto``, the state
    as far as images 0..upto make it (its entries of image ``upto`` are the ones a restore reads from
    that image)."""
    n = layers(manifests, upto)
    stream = _balanced([own_extents(manifests[i], i, start, end) for i in range(n)], overlay)
    for e in stream:
        if e[2] != HOLE_REF:
            yield e


def _balanced(streams: list[Iterator[T]], lay: Callable[[Iterator[T], Iterator[T]], Iterator[T]]) -> Iterator[T]:
    """``streams[0]`` laid over ``streams[1]`` over ... (nearest first), composed as a balanced tree:
    laying over is associative, and a chain of 1000 images nested one generator per image would
    pass Python's recursion limit on each step; a tree is ~10 deep."""
    while len(streams) > 1:
        paired = [lay(streams[i], streams[i + 1]) for i in range(0, len(streams) - 1, 2)]
        if len(streams) % 2:
            paired.append(streams[-1])
        streams = paired
    return streams[0]


def index_column(rows: bytes) -> Sequence[int]:
    """The first column of packed 24-byte rows (unit indices, or extents' disk offsets), without a
    copy where the machine is little-endian."""
    if sys.byteorder == "little":
        return memoryview(rows).cast("Q")[::_ROW // 8]
    col = array("Q")
    col.frombytes(rows)
    col.byteswap()  # the tables are little-endian
    return col[::_ROW // 8]


def _rows(blocks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    for block in blocks:
        for at in range(0, len(block), _ROW):
            yield int.from_bytes(block[at:at + 8], "little"), block[at:at + _ROW]


def overlay_units(top: Iterator[bytes], bottom: Iterator[bytes]) -> Iterator[bytes]:
    """Unit rows of ``top`` laid over ``bottom``'s (top wins on the same unit), in blocks. A bottom
    block that top does not touch passes through as it is: an incremental's few rows cost a bisection
    each, not a pass over the parent's rows one by one."""
    tops = _rows(top)
    t = next(tops, None)
    for block in bottom:
        if not block:
            continue
        col = index_column(block)
        first, last = col[0], col[-1]
        before: list[bytes] = []
        while t is not None and t[0] < first:
            before.append(t[1])
            t = next(tops, None)
            if len(before) >= TABLE_BLOCK_ROWS:
                yield b"".join(before)
                before = []
        if before:
            yield b"".join(before)
        if t is None or t[0] > last:
            yield block
            continue
        out: list[bytes] = []
        n_out = 0
        pos = 0
        while t is not None and t[0] <= last:
            p = bisect_left(col, t[0], pos)
            out.append(block[pos * _ROW:p * _ROW])
            out.append(t[1])
            n_out += p - pos + 1
            pos = p + 1 if p < len(col) and col[p] == t[0] else p
            t = next(tops, None)
            if n_out >= TABLE_BLOCK_ROWS:
                # A sparse bottom block can span much of the disk: what top lays into it goes out a
                # block's worth at a time, never as one batch that grows with the disk.
                yield b"".join(out)
                out, n_out = [], 0
        out.append(block[pos * _ROW:])
        yield b"".join(out)
    rest: list[bytes] = []
    while t is not None:
        rest.append(t[1])
        if len(rest) >= TABLE_BLOCK_ROWS:
            yield b"".join(rest)
            rest = []
        t = next(tops, None)
    if rest:
        yield b"".join(rest)


def resolved_units(manifests: Sequence[Manifest]) -> Iterator[bytes]:
    """The chain's current unit rows as seen from the point, in blocks, in unit order. Tombstones
    (`TOMBSTONE` hashes) of the point's layers stay in: a reader treats them as "no unit"."""
    n = layers(manifests)
    return _balanced([manifests[i].units.blocks() for i in range(n)], overlay_units)
