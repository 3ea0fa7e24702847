"""The one reading interface every parser uses: ``read(offset, length) -> bytes``.

Parsers of foreign structures (partition tables, NTFS, FAT) take a `Reader`, never a file object, so
they work the same on a whole disk, a partition window of it, or bytes in memory (tests, fuzzing).
A read past the end returns fewer bytes; callers that need exact sizes use `read_exact`.
"""

from __future__ import annotations

import errno
from typing import Protocol

from ..errors import FormatError, SourceError, SourceGone
from ..platform import files

# What a read of a device that is no longer there fails with (pulled out, powered off, medium removed).
# (ENOMEDIUM is Linux's: Windows' errno has no such name.)
_GONE = tuple(getattr(errno, name) for name in ("ENODEV", "ENXIO", "ENOMEDIUM") if hasattr(errno, name))


class Reader(Protocol):
    """Random-access read of a byte range; ``size`` is the total length in bytes."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...


class BytesReader:
    """A `Reader` over bytes in memory (tests, fuzzing, small structures)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise FormatError(what="read", detail=f"negative offset/length {offset}/{length}")
        return self._data[offset:offset + length]


class FdReader:
    """A `Reader` over an open file descriptor (positional reads, `core.platform.files`; release the GIL)."""

    def __init__(self, fd: int, size: int, path: str = "") -> None:
        self.fd = fd
        self.size = size
        self.path = path

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise FormatError(what="read", detail=f"negative offset/length {offset}/{length}")
        return pread_full(self.fd, offset, max(0, min(length, self.size - offset)), self.path)

    def read_into(self, offset: int, buf: memoryview) -> int:
        """Like `read` into ``buf`` (a reused buffer: no allocation); returns the bytes read."""
        if offset < 0:
            raise FormatError(what="read", detail=f"negative offset {offset}")
        return pread_into(self.fd, offset, buf[:max(0, min(len(buf), self.size - offset))], self.path)


class WindowReader:
    """A `Reader` over ``[start, start+size)`` of another reader (a partition of a disk)."""

    def __init__(self, base: Reader, start: int, size: int) -> None:
        if start < 0 or size < 0:
            raise FormatError(what="window", detail=f"bad window {start}+{size}")
        self.base = base
        self.start = start
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise FormatError(what="read", detail=f"negative offset/length {offset}/{length}")
        length = max(0, min(length, self.size - offset))
        return self.base.read(self.start + offset, length)


def read_error(e: OSError, path: str, offset: int) -> SourceError:
    """The error for a failed read: `SourceGone` when the device itself is gone, else `SourceError`
    (a bad sector, which the backup records as unreadable and reads around)."""
    if e.errno in _GONE:
        return SourceGone(path=path, detail=f"{e.strerror} at byte {offset} (unplugged?)")
    return SourceError(path=path, detail=f"{e.strerror} at byte {offset}")


def pread_full(fd: int, offset: int, length: int, path: str) -> bytes:
    """``length`` bytes at ``offset`` (fewer only at end of file); an I/O error is a `SourceError`."""
    try:
        first = files.pread(fd, length, offset)
    except OSError as e:
        raise read_error(e, path, offset) from e
    if len(first) == length or not first:
        return first  # the common case: one read, no copy
    out = bytearray(first)
    while len(out) < length:
        try:
            chunk = files.pread(fd, length - len(out), offset + len(out))
        except OSError as e:
            raise read_error(e, path, offset + len(out)) from e
        if not chunk:
            break  # the file or device ended (or shrank under us); callers that need exact sizes check
        out += chunk
    return bytes(out)


def pread_into(fd: int, offset: int, buf: memoryview, path: str) -> int:
    """Fill ``buf`` from ``offset`` (less only at end of file); returns the bytes read. An I/O error
    is a `SourceError`."""
    done = 0
    while done < len(buf):
        try:
            n = files.pread_into(fd, buf[done:], offset + done)
        except OSError as e:
            raise read_error(e, path, offset + done) from e
        if not n:
            break  # the file or device ended (or shrank under us); callers that need exact sizes check
        done += n
    return done


def read_exact(reader: Reader, offset: int, length: int, what: str) -> bytes:
    """Read exactly ``length`` bytes or raise `FormatError` naming ``what``."""
    data = reader.read(offset, length)
    if len(data) != length:
        raise FormatError(what=what, detail=f"truncated: wanted {length} bytes at {offset}, got {len(data)}")
    return data
