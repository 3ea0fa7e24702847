"""Cell allocation in a hive held in memory: allocate, free (with coalescing), grow by new hbins.

Rules (BOOT.md §9.2/§9.3): a cell's size is a multiple of 8 including its 4-byte size field,
negative while allocated; free cells are positive; cells tile their hbin and never cross one. We take
the smallest free cell that fits (splitting off a remainder of at least 8 bytes), else append an hbin
sized to a multiple of 4096 and grow the base block's hive-bins size. A freed cell merges with free
neighbours in the same bin, so the hive never holds two adjacent free cells we created.
"""

from __future__ import annotations

import struct

from ..errors import FormatError
from .c_regf import BASE_BLOCK_SIZE, CELL_ALIGN, HBIN_ALIGN, HBIN_HEADER, MIN_CELL
from .hive import MAX_HIVE_SIZE, Hive

_I32 = struct.Struct("<i")


def cell_size_for(data_len: int) -> int:
    """Size of a cell holding ``data_len`` bytes: 4-byte size field, rounded up to 8."""
    return max(MIN_CELL, (data_len + 4 + CELL_ALIGN - 1) // CELL_ALIGN * CELL_ALIGN)


def _set_size(hive: Hive, off: int, size: int) -> None:
    _I32.pack_into(hive.data, BASE_BLOCK_SIZE + off, size)


def _add_free(hive: Hive, off: int, size: int) -> None:
    hive.free[off] = size
    hive.free_end[off + size] = off
    _set_size(hive, off, size)


def _take_free(hive: Hive, off: int) -> int:
    size = hive.free.pop(off)
    del hive.free_end[off + size]
    return size


def allocate(hive: Hive, data: bytes) -> int:
    """Store ``data`` in a new allocated cell and return its offset."""
    need = cell_size_for(len(data))
    best = -1
    best_size = 0
    for off, size in hive.free.items():
        if size >= need and (best < 0 or size < best_size):
            best, best_size = off, size
            if size == need:
                break
    if best < 0:
        best = _grow(hive, need)
    size = _take_free(hive, best)
    if size - need >= MIN_CELL:
        _add_free(hive, best + need, size - need)
        size = need
    _set_size(hive, best, -size)
    hive.allocated[best] = size
    hive.invalidate(best)
    start = BASE_BLOCK_SIZE + best + 4
    hive.data[start:start + size - 4] = data.ljust(size - 4, b"\0")
    return best


def free(hive: Hive, off: int) -> None:
    """Mark an allocated cell free and merge it with free neighbours in the same bin."""
    hive.invalidate(off)
    size = hive.allocated.pop(off, None)
    if size is None:
        raise FormatError(what=f"hive {hive.name}", detail=f"freeing {off:#x}, which is not an allocated cell")
    nxt = off + size
    if nxt in hive.free:  # a cell never crosses a bin, so a free cell starting here is in the same bin
        size += _take_free(hive, nxt)
    prev = hive.free_end.get(off)
    if prev is not None:
        size += _take_free(hive, prev)
        off = prev
    _add_free(hive, off, size)
    # Zero the freed data: stale value data (paths, GUIDs) should not linger in the file.
    start = BASE_BLOCK_SIZE + off + 4
    hive.data[start:start + size - 4] = bytes(size - 4)


def _grow(hive: Hive, need: int) -> int:
    """Append an hbin big enough for a ``need``-byte cell; return the offset of its free cell."""
    off = hive.header.hbins_size
    size = (need + HBIN_HEADER.size + HBIN_ALIGN - 1) // HBIN_ALIGN * HBIN_ALIGN
    if BASE_BLOCK_SIZE + off + size > MAX_HIVE_SIZE:
        raise FormatError(what=f"hive {hive.name}", detail=f"growing past the {MAX_HIVE_SIZE}-byte cap")
    end = BASE_BLOCK_SIZE + off + size
    if len(hive.data) < end:
        hive.data.extend(bytes(end - len(hive.data)))
    # Anything after the old hive bins (Windows pads files to 256 KiB) is overwritten by the new bin.
    hive.data[BASE_BLOCK_SIZE + off:end] = bytes(size)
    hive.data[BASE_BLOCK_SIZE + off:BASE_BLOCK_SIZE + off + HBIN_HEADER.size] = HBIN_HEADER.build(
        signature=b"hbin", offset=off, size=size)
    hive.bins.append((off, size))
    cell = off + HBIN_HEADER.size
    _add_free(hive, cell, size - HBIN_HEADER.size)
    hive.set_hbins_size(off + size)
    return cell
