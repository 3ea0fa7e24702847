"""File primitives for Linux and Windows: open, positional I/O, durability, cache hints.

Every file the engine and the CLI open goes through `open_fd` (tests/platform/test_portable.py fails
on an ``os.open`` anywhere else), so two Windows traps are closed in one place:

- **Text mode.** Windows' C runtime opens a file in text mode unless asked for ``O_BINARY``: a write
  turns ``\\n`` into ``\\r\\n`` and a read stops at byte 0x1A, corrupting images silently.
  `open_fd` always adds ``O_BINARY`` (0 on Linux, so Linux flags are unchanged).
- **No pread/pwrite.** Windows has no ``os.pread``/``os.pwrite``/``os.preadv``. `pread`,
  `pread_into` and `pwrite` call ``ReadFile``/``WriteFile`` on the descriptor's handle with the offset
  in an ``OVERLAPPED``: each call names its own offset, so the shared file position is never relied
  on and threads reading or writing one descriptor do not disturb each other (as with pread on Linux).

On Linux every function is the system call the code made before this module existed (same flags,
same calls); the constants below are 0 where a flag does not exist, so callers can always OR them.
Linux-only features answer "not here" on Windows: `fsync_dir` and `drop_cache` do nothing,
`start_writeback` is a no-op, ``O_DIRECT`` is 0 (unbuffered I/O on Windows disks is the Windows disk
backend's business, not a flag on a file descriptor).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

WINDOWS = sys.platform == "win32"

BINARY: int = getattr(os, "O_BINARY", 0)
CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)  # Windows: Python makes every descriptor non-inheritable
NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
DIRECT: int = getattr(os, "O_DIRECT", 0)

# One ReadFile/WriteFile moves at most a DWORD of bytes; 1 GiB keeps well below it (a short count is
# continued by the callers' loops, as with a short pread).
_MAX_IO = 1 << 30


def open_fd(path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
    """``os.open`` in binary mode (OSError is the caller's). On Windows only the owner-write bit of
    ``mode`` counts (a file without it is read-only)."""
    if dir_fd is not None:
        return os.open(path, flags | BINARY, mode, dir_fd=dir_fd)
    return os.open(path, flags | BINARY, mode)


# sys.platform itself (not WINDOWS) so that mypy checks the branch of the platform it checks for.
if sys.platform != "win32":

    def pread(fd: int, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (one call; fewer at end of file)."""
        return os.pread(fd, length, offset)

    def pread_into(fd: int, buf: memoryview, offset: int) -> int:
        """Read into ``buf`` at ``offset`` (one call, no allocation); the bytes read, 0 at end of file."""
        return os.preadv(fd, [buf], offset)

    def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        """Write ``data`` at ``offset`` (one call); the bytes written."""
        return os.pwrite(fd, data, offset)

    def fsync_dir(path: str) -> None:
        """Make the directory's entries (a rename into it) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``; `fsync_dir` of the folder then makes it durable."""
        os.rename(src, dst)

    def drop_cache(fd: int) -> None:
        """Drop the file's cached pages (advice: OSError is the caller's to ignore)."""
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    _SYNC_FILE_RANGE_WRITE = 2
    _sync_file_range: Any = None
    try:
        _sync_file_range = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                       use_errno=True).sync_file_range
        _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    except (OSError, AttributeError):  # not glibc: the final fsync does all the work
        _sync_file_range = None

    def start_writeback(fd: int, offset: int, length: int) -> None:
        """Ask for asynchronous write-back of a range (sync_file_range WRITE: does not wait; its errors
        come back from the next fsync)."""
        if _sync_file_range is not None:
            _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

else:
    import msvcrt
    from ctypes import wintypes

    _kernel32: Any = ctypes.WinDLL("kernel32", use_last_error=True)
    _ERROR_HANDLE_EOF = 38
    _MOVEFILE_REPLACE_EXISTING = 0x1
    _MOVEFILE_WRITE_THROUGH = 0x8

    class _Overlapped(ctypes.Structure):
        # OVERLAPPED with its offset union as the two DWORDs: only the offset is used (synchronous I/O).
        _fields_ = [("Internal", ctypes.c_size_t), ("InternalHigh", ctypes.c_size_t),
                    ("Offset", wintypes.DWORD), ("OffsetHigh", wintypes.DWORD), ("hEvent", wintypes.HANDLE)]

    _kernel32.ReadFile.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD,
                                   ctypes.POINTER(wintypes.DWORD), ctypes.POINTER(_Overlapped)]
    _kernel32.ReadFile.restype = wintypes.BOOL
    _kernel32.WriteFile.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD,
                                    ctypes.POINTER(wintypes.DWORD), ctypes.POINTER(_Overlapped)]
    _kernel32.WriteFile.restype = wintypes.BOOL
    _kernel32.MoveFileExW.argtypes = [wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD]
    _kernel32.MoveFileExW.restype = wintypes.BOOL

    def _overlapped(offset: int) -> _Overlapped:
        if offset < 0:
            raise OSError(22, "negative offset")
        return _Overlapped(0, 0, offset & 0xFFFFFFFF, offset >> 32, None)

    def _transfer(fn: Any, fd: int, address: int | bytes, length: int, offset: int) -> int:
        done = wintypes.DWORD(0)
        ov = _overlapped(offset)
        if not fn(msvcrt.get_osfhandle(fd), address, min(length, _MAX_IO), ctypes.byref(done), ctypes.byref(ov)):
            code = ctypes.get_last_error()
            if code == _ERROR_HANDLE_EOF:  # a read at or past the end: what pread calls 0 bytes
                return 0
            raise ctypes.WinError(code)
        return int(done.value)

    def pread(fd: int, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (one call; fewer at end of file)."""
        buf = bytearray(min(length, _MAX_IO))
        n = pread_into(fd, memoryview(buf), offset) if buf else 0
        del buf[n:]
        return bytes(buf)

    def pread_into(fd: int, buf: memoryview, offset: int) -> int:
        """Read into ``buf`` at ``offset`` (one call, no allocation); the bytes read, 0 at end of file."""
        if not len(buf):
            return 0
        target = (ctypes.c_char * len(buf)).from_buffer(buf.cast("B"))
        return _transfer(_kernel32.ReadFile, fd, ctypes.addressof(target), len(buf), offset)

    def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        """Write ``data`` at ``offset`` (one call); the bytes written."""
        view = memoryview(data).cast("B")
        if not len(view):
            return 0
        if view.readonly:
            # ctypes takes no address of read-only memory except a bytes object's own; slices of
            # bytes (a restore's chunks) are copied once, a cost Windows' disk speed hides.
            raw = data if isinstance(data, bytes) else view.tobytes()
            return _transfer(_kernel32.WriteFile, fd, raw, len(view), offset)
        source = (ctypes.c_char * len(view)).from_buffer(view)
        return _transfer(_kernel32.WriteFile, fd, ctypes.addressof(source), len(view), offset)

    def fsync_dir(path: str) -> None:
        """Nothing to do: Windows cannot open a directory as a file descriptor, and needs no directory
        flush: `rename` asks ``MoveFileExW`` for ``MOVEFILE_WRITE_THROUGH``, which returns only once
        the rename is on the disk (NTFS journals it), the documented way to make a rename durable."""

    def rename(src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` durably (``MOVEFILE_WRITE_THROUGH``), replacing ``dst`` as Linux
        rename does (``os.rename`` on Windows refuses an existing target)."""
        if not _kernel32.MoveFileExW(src, dst, _MOVEFILE_REPLACE_EXISTING | _MOVEFILE_WRITE_THROUGH):
            raise ctypes.WinError(ctypes.get_last_error())

    def drop_cache(fd: int) -> None:
        """Nothing to do: Windows has no advice call for a file's cache."""

    def start_writeback(fd: int, offset: int, length: int) -> None:
        """Nothing to do: Windows' lazy writer starts write-back by itself; the fsync commits."""
