"""Byte extents ``(offset, length)`` and the few operations on lists of them that the engine needs.

Lists that follow a volume's fragmentation (its used runs) are `Runs`, packed, and are transformed by
the streaming ``iter_*`` functions; the ``*_extents`` functions take and return plain lists.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

Extent = tuple[int, int]  # (offset, length) in bytes


def merge_extents(extents: list[Extent]) -> list[Extent]:
    """Sort and merge touching/overlapping extents; drops empty ones."""
    return list(iter_merged(sorted(extents)))


def subtract_extents(extents: list[Extent], remove: list[Extent]) -> list[Extent]:
    """``extents`` minus ``remove`` (both merged lists); result merged."""
    return list(iter_subtract(merge_extents(extents), remove))


def iter_pieces(extents: list[Extent], piece: int) -> Iterator[Extent]:
    """Split extents into pieces of at most ``piece`` bytes (for bounded reads)."""
    for off, length in extents:
        while length > 0:
            n = min(piece, length)
            yield off, n
            off += n
            length -= n


class Runs(Sequence[Extent]):
    """Sorted extents packed 16 bytes each, for lists that follow a volume's fragmentation.

    A filesystem's used runs are as many as its used space has pieces: a few hundred thousand to
    millions on a large, old Windows volume. A tuple of two ints per run costs ~100 bytes, and the
    backup plan measured ~260 a run with its region objects; packed in an ``array('Q')`` a million
    runs take 16 MiB, which keeps a backup's memory inside its bound on such disks.
    """

    __slots__ = ("_a", "total")

    def __init__(self, extents: Iterable[Extent] = ()) -> None:
        self._a = array("Q")
        self.total = 0  # bytes covered
        for off, length in extents:
            self.append(off, length)

    def append(self, off: int, length: int) -> None:
        """Add a run after the last one (the caller keeps the order)."""
        self._a.append(off)
        self._a.append(length)
        self.total += length

    def __len__(self) -> int:
        return len(self._a) // 2

    @overload
    def __getitem__(self, i: int) -> Extent: ...

    @overload
    def __getitem__(self, i: slice) -> list[Extent]: ...

    def __getitem__(self, i: int | slice) -> Extent | list[Extent]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._a[2 * i], self._a[2 * i + 1]

    def __iter__(self) -> Iterator[Extent]:
        it = iter(self._a)
        return zip(it, it)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == tuple(b) for a, b in zip(self, other))

    def __add__(self, other: Iterable[Extent]) -> list[Extent]:
        return [*self, *other]  # like list + list; a plain list, for the small lists it is joined with

    __hash__ = None  # type: ignore[assignment]  # mutable while built, like a list

    def __repr__(self) -> str:
        return f"Runs({list(self)!r})"


def iter_merged(extents: Iterable[Extent]) -> Iterator[Extent]:
    """Merge touching/overlapping extents of an iterable sorted by offset, streaming; drops empty ones."""
    cur_off = cur_end = -1
    for off, length in extents:
        if length <= 0:
            continue
        if cur_end >= 0 and off <= cur_end:
            cur_end = max(cur_end, off + length)
            continue
        if cur_end >= 0:
            yield cur_off, cur_end - cur_off
        cur_off, cur_end = off, off + length
    if cur_end >= 0:
        yield cur_off, cur_end - cur_off


def iter_subtract(extents: Iterable[Extent], remove: list[Extent]) -> Iterator[Extent]:
    """``extents`` (sorted, merged, streamed) minus ``remove`` (a list, merged here), streaming."""
    rem = merge_extents(remove)
    j = 0
    for off, length in extents:
        cur, end = off, off + length
        while j < len(rem) and rem[j][0] + rem[j][1] <= cur:
            j += 1
        k = j
        while k < len(rem) and rem[k][0] < end:
            r_off, r_len = rem[k]
            if r_off > cur:
                yield cur, r_off - cur
            cur = max(cur, r_off + r_len)
            k += 1
        if cur < end:
            yield cur, end - cur


def intersect_extents(extents: Iterable[Extent], keep: list[Extent]) -> list[Extent]:
    """The parts of ``extents`` (sorted, merged, streamed) inside ``keep`` (a list, merged here); the
    result is no longer than ``keep`` allows, whatever the length of ``extents``."""
    kept = merge_extents(keep)
    out: list[Extent] = []
    j = 0
    for off, length in extents:
        end = off + length
        while j < len(kept) and kept[j][0] + kept[j][1] <= off:
            j += 1
        k = j
        while k < len(kept) and kept[k][0] < end:
            lo, hi = max(off, kept[k][0]), min(end, kept[k][0] + kept[k][1])
            if hi > lo:
                out.append((lo, hi - lo))
            k += 1
    return merge_extents(out)
