"""Marvin32, the 64-bit hash Windows puts in every new-format (HvLE) log entry of a registry hive.

Written from the published description of the algorithm (BOOT.md §9.4 names the sources, and the seed
and what is hashed): a 32-bit lo/hi state mixed with each little-endian uint32 of the input, then a
final block holding the 0-3 remaining bytes behind a 0x80 marker, then a zero block. The tests check
it against the hashes Windows wrote into real logs.
"""

from __future__ import annotations

import itertools
import struct

_M32 = 0xFFFFFFFF


def marvin32(data: bytes | bytearray | memoryview, seed: int) -> int:
    """The Marvin32 hash of ``data`` with the 64-bit ``seed`` (hi << 32 | lo)."""
    lo = seed & _M32
    hi = (seed >> 32) & _M32
    view = memoryview(data)
    whole = len(view) // 4 * 4
    final = 0x80  # the 0-3 bytes left over, little-endian, behind a 0x80 marker byte
    for b in reversed(bytes(view[whole:])):
        final = (final << 8) | b
    # streamed, never a list: a log entry may be many MiB and a list of ints costs ~9x its bytes
    words = itertools.chain((w for (w,) in struct.iter_unpack("<I", view[:whole])), (final, 0))
    for word in words:
        lo = (lo + word) & _M32
        hi ^= lo
        lo = (((lo << 20) | (lo >> 12)) + hi) & _M32
        hi = ((hi << 9) | (hi >> 23)) & _M32 ^ lo
        lo = (((lo << 27) | (lo >> 5)) + hi) & _M32
        hi = ((hi << 19) | (hi >> 13)) & _M32
    return (hi << 32) | lo
