"""The extent map and unit table of an image, in blocks (FORMAT.md "Table area", version 2).

Version 1 kept both tables whole in the manifest body, so every reader held tables that grow with
the disk. Version 2 writes them as blocks of at most TABLE_BLOCK_ROWS rows into the manifest's table
area while the backup runs (`TableWriter`), each block compressed, sealed for encrypted images and
listed in the body by a `TableBlock` entry (key range, place, rows, BLAKE3 of the stored bytes). A
reader (`BlockTable`) keeps only that index; it fetches a block when a stream or a lookup needs it,
checks its digest against the index (which the manifest digest pins), opens and decompresses it
into a bounded buffer and checks its rows before handing them out. Version-1 tables, read whole
from the body, are wrapped in `MemoryTable`, which has the same interface.

Rows are handed out as packed bytes of whole rows (one block at a time): the callers' hot loops
work on them with the declared codecs, never on a Python object per row.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import blake3
import zstandard

from ..crypto.keys import ImageKeys
from ..errors import IntegrityError
from ..io.atomic import pwrite_all
from ..platform import files
from .c_image import (CHUNK_SIZE, HASH_UNIT, HOLE_REF, NONCE_TABLE, TABLE_BLOCK_ROWS, ExtentEntry,
                      TableBlock, UnitEntry)
from ..structs import Struct

# Decoded blocks a table keeps: a stream needs one, a mount's lookups hop between a few places.
CACHED_BLOCKS = 4
# Blocks are small; level 3 costs nothing next to the data and packs the (sorted) key columns well.
TABLE_LEVEL = 3

_TB = TableBlock.codec


@dataclass(frozen=True)
class TableKind:
    """What a table holds: its row struct and how a row's key range is read."""

    name: str
    row: Struct

    def keys(self, rows: bytes | memoryview) -> tuple[int, int]:
        """(first key, last key) of packed rows: for extents the first offset and the end of the last
        extent, for units the first and last unit index."""
        codec = self.row.codec
        first = codec.unpack_from(rows, 0)
        last = codec.unpack_from(rows, len(rows) - codec.size)
        if self is EXTENTS:
            return first[0], last[0] + last[1]
        return first[0], last[0]


EXTENTS = TableKind("extent map", ExtentEntry)
UNITS = TableKind("unit table", UnitEntry)


def _aad(uuid: bytes, offset: int) -> bytes:
    return uuid + offset.to_bytes(8, "little")


class TableWriter:
    """Appends table blocks to an open manifest file from ``start`` on (`ImageWriter` owns the file).

    ``add`` takes packed rows in key order; every TABLE_BLOCK_ROWS rows of a table become one block.
    """

    def __init__(self, fd: int, start: int, keys: ImageKeys, uuid: bytes, encrypted: bool,
                 on_error: Callable[[OSError], Exception]) -> None:
        self.fd = fd
        self.on_error = on_error  # a failed write (disk full, I/O error) as the caller reports it
        self.pos = start
        self.start = start
        self.keys = keys
        self.uuid = uuid
        self.encrypted = encrypted
        self._pending: dict[TableKind, bytearray] = {EXTENTS: bytearray(), UNITS: bytearray()}
        self.index: dict[TableKind, bytearray] = {EXTENTS: bytearray(), UNITS: bytearray()}
        self.rows: dict[TableKind, int] = {EXTENTS: 0, UNITS: 0}
        self._z = zstandard.ZstdCompressor(level=TABLE_LEVEL)

    def add(self, kind: TableKind, rows: bytes | bytearray) -> None:
        pending = self._pending[kind]
        pending += rows
        block = TABLE_BLOCK_ROWS * kind.row.size
        if len(pending) >= block:
            whole = len(pending) // block * block
            for at in range(0, whole, block):
                self._block(kind, bytes(pending[at:at + block]))
            del pending[:whole]

    def finish(self) -> int:
        """Write what is pending; returns the table area's length."""
        for kind, pending in self._pending.items():
            if pending:
                self._block(kind, bytes(pending))
                pending.clear()
        return self.pos - self.start

    def _block(self, kind: TableKind, rows: bytes) -> None:
        stored = self._z.compress(rows)
        if self.encrypted:
            stored = self.keys.seal(NONCE_TABLE, self.pos, stored, _aad(self.uuid, self.pos))
        try:
            pwrite_all(self.fd, stored, self.pos)
        except OSError as e:
            raise self.on_error(e) from e
        first, last = kind.keys(rows)
        self.index[kind] += _TB.pack(first, last, self.pos, len(stored), len(rows) // kind.row.size,
                                     blake3.blake3(stored).digest())
        self.rows[kind] += len(rows) // kind.row.size
        self.pos += len(stored)


class Table:
    """The interface both table versions share: blocks of packed rows, in key order."""

    kind: TableKind
    count: int  # rows

    def block_count(self) -> int:
        raise NotImplementedError

    def block(self, i: int) -> bytes:
        raise NotImplementedError

    def first_block(self, key: int) -> int:
        """The block where rows with keys >= ``key`` start (for extents: ending after ``key``)."""
        raise NotImplementedError

    def blocks(self, key: int = 0) -> Iterator[bytes]:
        """Packed rows from the block holding ``key`` on, a block at a time."""
        for i in range(self.first_block(key), self.block_count()):
            yield self.block(i)


class MemoryTable(Table):
    """A version-1 table, whole in memory (as version 1 always was), cut into blocks on the fly."""

    def __init__(self, kind: TableKind, rows: bytes) -> None:
        self.kind = kind
        self.rows = rows
        self.count = len(rows) // kind.row.size
        self._step = TABLE_BLOCK_ROWS * kind.row.size
        self._firsts = [kind.row.codec.unpack_from(rows, at)[0] for at in range(0, len(rows), self._step)]

    def block_count(self) -> int:
        return len(self._firsts)

    def block(self, i: int) -> bytes:
        return self.rows[i * self._step:(i + 1) * self._step]

    def first_block(self, key: int) -> int:
        return max(0, bisect_right(self._firsts, key) - 1)


class BlockTable(Table):
    """A version-2 table read from the manifest file's table area, block by block, each checked.

    ``check_rows`` is called on every decoded block (the manifest knows what a row may name, e.g.
    its chunk table); it raises `IntegrityError`.
    """

    def __init__(self, kind: TableKind, file: BinaryIO, index: bytes, area: tuple[int, int], keys: ImageKeys,
                 uuid: bytes, encrypted: bool, check_rows: Callable[[bytes], None], what: str) -> None:
        self.kind = kind
        # The manifest stays open while its image is in use (as its volumes do): a prune or merge
        # removing the file meanwhile cannot take the blocks away from a running restore.
        self.file = file
        self.keys = keys
        self.uuid = uuid
        self.encrypted = encrypted
        self.check_rows = check_rows
        self.what = what
        self.entries = [_TB.unpack_from(index, at) for at in range(0, len(index), _TB.size)]
        self.count = sum(e[4] for e in self.entries)
        self._firsts = [e[0] for e in self.entries]
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._check_index(area)

    def _check_index(self, area: tuple[int, int]) -> None:
        """Keys rise from block to block and every block lies inside the table area. (That the
        blocks of both tables tile the area is checked by the manifest, which sees both.)"""
        prev = -1
        lo, hi = area
        for n, (first, last, offset, stored, rows, _) in enumerate(self.entries):
            if not 0 < rows <= TABLE_BLOCK_ROWS or first > last or first < prev \
                    or (first == prev and self.kind is UNITS) or offset < lo or offset + stored > hi:
                raise IntegrityError(detail=f"{self.what}: {self.kind.name} block {n} is out of place")
            prev = last

    def block_count(self) -> int:
        return len(self.entries)

    def first_block(self, key: int) -> int:
        i = max(0, bisect_right(self._firsts, key) - 1)
        # for extents the previous block may end before ``key``; the next then holds it
        while i + 1 < len(self.entries) and self.entries[i][1] <= key and self.kind is EXTENTS:
            i += 1
        return i

    def block(self, i: int) -> bytes:
        with self._lock:
            rows = self._cache.get(i)
            if rows is not None:
                self._cache.move_to_end(i)
                return rows
        rows = self._load(i)
        with self._lock:
            self._cache[i] = rows
            while len(self._cache) > CACHED_BLOCKS:
                self._cache.popitem(last=False)
        return rows

    def _load(self, i: int) -> bytes:
        first, last, offset, stored_len, n, digest = self.entries[i]
        where = f"{self.what}: {self.kind.name} block {i} at byte {offset}"
        stored: bytes | memoryview
        try:
            stored = files.pread(self.file.fileno(), stored_len, offset)
        except (OSError, ValueError) as e:  # (ValueError: the manifest was closed)
            raise IntegrityError(detail=f"{where}: cannot read: {getattr(e, 'strerror', None) or e}") from None
        if len(stored) != stored_len or blake3.blake3(stored).digest() != digest:
            raise IntegrityError(detail=f"{where}: damaged (digest mismatch)")
        if self.encrypted:
            stored = self.keys.open(NONCE_TABLE, offset, stored, _aad(self.uuid, offset), where)
        size = n * self.kind.row.size
        try:
            rows = zstandard.ZstdDecompressor().decompress(stored, max_output_size=size)
        except zstandard.ZstdError as e:
            raise IntegrityError(detail=f"{where}: does not decompress ({e})") from None
        if len(rows) != size or self.kind.keys(rows) != (first, last):
            raise IntegrityError(detail=f"{where}: does not hold the rows its index entry says")
        self.check_rows(rows)
        return rows


def check_extent_rows(rows: bytes, raw_length: Callable[[int], int | None], what: str, disk_size: int,
                      holes: bool) -> None:
    """A version-2 extent block: sorted, not overlapping, inside the disk, each row this image's chunk
    bytes (inside the chunk) or, unless ``holes`` is false (a full image), a hole. ``raw_length(n)`` is
    chunk n's raw length, or None when there is none."""
    end = -1
    # A hole may reach to the end of the disk's last unit (images of rescue 0.2.0's first builds
    # have such holes; they change nothing), data only to the disk's end.
    hole_limit = -(-disk_size // HASH_UNIT) * HASH_UNIT
    for off, n, chunk, coff, ref, reserved in ExtentEntry.codec.iter_unpack(rows):
        if n == 0 or off < end or reserved or off + n > (hole_limit if ref == HOLE_REF else disk_size):
            raise IntegrityError(detail=f"{what}: extent at disk byte {off} is malformed, overlaps another "
                                        "or lies past the disk's end")
        if ref == HOLE_REF and not holes:
            raise IntegrityError(detail=f"{what}: extent at disk byte {off} is a hole in a full image")
        if ref != HOLE_REF:
            size = raw_length(chunk) if ref == 0 else None
            if size is None or n > CHUNK_SIZE or coff + n > size:
                raise IntegrityError(detail=f"{what}: extent at disk byte {off} names bytes "
                                            f"{coff}+{n} of chunk {chunk}, which the image does not hold")
        end = off + n


def check_unit_rows(rows: bytes, what: str) -> None:
    """A unit block: unit indices strictly rising."""
    prev = -1
    for index, _ in UnitEntry.codec.iter_unpack(rows):
        if index <= prev:
            raise IntegrityError(detail=f"{what}: unit table is not in order at unit {index}")
        prev = index
