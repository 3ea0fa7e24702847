"""Byte extents ``(offset, length)`` and the few operations on lists of them that the engine needs."""

from __future__ import annotations

from typing import Iterator

Extent = tuple[int, int]  # (offset, length) in bytes


def merge_extents(extents: list[Extent]) -> list[Extent]:
    """Sort and merge touching/overlapping extents; drops empty ones."""
    out: list[Extent] = []
    for off, length in sorted(e for e in extents if e[1] > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            last_off, last_len = out[-1]
            out[-1] = (last_off, max(last_len, off + length - last_off))
        else:
            out.append((off, length))
    return out


def subtract_extents(extents: list[Extent], remove: list[Extent]) -> list[Extent]:
    """``extents`` minus ``remove`` (both merged lists); result merged."""
    out: list[Extent] = []
    rem = merge_extents(remove)
    j = 0
    for off, length in merge_extents(extents):
        cur, end = off, off + length
        while j < len(rem) and rem[j][0] + rem[j][1] <= cur:
            j += 1
        k = j
        while k < len(rem) and rem[k][0] < end:
            r_off, r_len = rem[k]
            if r_off > cur:
                out.append((cur, r_off - cur))
            cur = max(cur, r_off + r_len)
            k += 1
        if cur < end:
            out.append((cur, end - cur))
    return out


def iter_pieces(extents: list[Extent], piece: int) -> Iterator[Extent]:
    """Split extents into pieces of at most ``piece`` bytes (for bounded reads)."""
    for off, length in extents:
        while length > 0:
            n = min(piece, length)
            yield off, n
            off += n
            length -= n
