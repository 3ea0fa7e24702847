"""A Windows disk (``\\\\.\\PhysicalDriveN``) behind the interface of `core.disk.device.Disk`.

- `open_source` opens GENERIC_READ only (sharing read and write: Windows keeps using its volumes),
  so imaging cannot change the source even by mistake: Windows refuses a write through the handle.
- `open_target` makes every check first (`core.platform.windows.refuse`, size, sector size, write
  protection), then locks and dismounts every volume of the disk (a volume that cannot be locked
  refuses the target), and only then opens it GENERIC_READ|GENERIC_WRITE with
  FILE_FLAG_NO_BUFFERING|FILE_FLAG_WRITE_THROUGH: each write reaches the disk before WriteFile
  returns, nothing is held in a cache.
- Unbuffered I/O must start and end on sector boundaries from a sector-aligned buffer (Windows
  answers ERROR_INVALID_PARAMETER otherwise): every transfer goes through a VirtualAlloc'd (page-
  aligned) buffer over the sectors covering the request, and a write that starts or ends inside a
  sector first reads that sector, so the bytes around it stay as they were.
- Every write is read back from the disk at once (no cache can answer) and compared, asked to
  ``verify`` or not: the writes not asked (the first sector's invalidation, the partition table, boot
  records) are a few sectors, and the engine's own final read-back comes before the table.
- After a write touches the partition-table areas (the first and the last 34 sectors: MBR, GPT
  headers and entries), the next `WinDisk.sync` flushes and sends IOCTL_DISK_UPDATE_PROPERTIES, so
  Windows reads the new table (and drops the volumes of the old one) before anything else is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Iterator

from ...errors import SourceError, TargetRefused, TargetWriteError, UsageError, VerifyAfterWriteError
from . import c_win as c
from . import query, refuse, volumes
from .seam import Win32, Win32Error, current

# One transfer moves at most this much (a buffer of this size is allocated per call in progress).
PIECE = 4 << 20
# Sectors at each end of a disk that hold partition tables: MBR + GPT header + 32 sectors of entries.
TABLE_SECTORS = 34
_SHARE = c.FILE_SHARE_READ | c.FILE_SHARE_WRITE
_UNBUFFERED = c.FILE_FLAG_NO_BUFFERING | c.FILE_FLAG_WRITE_THROUGH
_NO_LOCK = contextlib.nullcontext()


class _Aligned:
    """A VirtualAlloc'd buffer (page-aligned, so sector-aligned) as a memoryview, freed on exit."""

    def __init__(self, api: Win32, size: int) -> None:
        self.api, self.size = api, size
        self.address = api.virtual_alloc(size)
        self.view = memoryview((ctypes.c_char * size).from_address(self.address)).cast("B")

    def __enter__(self) -> _Aligned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.view.release()
        self.api.virtual_free(self.address)


@dataclass
class WinDisk:
    """An open Windows disk; ``path`` is ``\\\\.\\PhysicalDriveN`` as the user gave it."""

    path: str
    number: int
    handle: int
    api: Win32
    size: int
    logical_sector_size: int
    physical_sector_size: int
    read_only: bool
    model: str = ""
    serial: str = ""
    bus: str = ""
    kind: str = "block"
    locks: volumes.VolumeLocks | None = field(default=None, repr=False)
    footprint: Any = field(default=None, repr=False)  # Linux's safety.Footprint has no Windows meaning
    _table_touched: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rmw: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def real_path(self) -> str:
        return self.path

    # --- reading ------------------------------------------------------------------------------------

    def _span(self, offset: int, length: int) -> tuple[int, int]:
        ss = self.logical_sector_size
        return offset - offset % ss, -(-(offset + length) // ss) * ss

    def _pieces(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        # Pieces end on multiples of PIECE (a multiple of any sector size), so only the first and the
        # last piece of an unaligned request start or end inside a sector.
        pos = lo
        while pos < hi:
            n = min(hi, (pos // PIECE + 1) * PIECE) - pos
            yield pos, n
            pos += n

    def _transfer(self, write: bool, buf: _Aligned, at: int, n: int, into: int = 0) -> None:
        """Move [at, at+n) of the disk to or from ``buf`` at ``into`` (all sector multiples)."""
        call = self.api.write_file if write else self.api.read_file
        done = 0
        while done < n:
            got = call(self.handle, buf.address + into + done, n - done, at + done)
            if got <= 0:
                raise Win32Error(c.ERROR_HANDLE_EOF, "WriteFile" if write else "ReadFile")
            done += got

    def pread(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (short only at the end of the disk)."""
        if offset < 0 or length < 0:
            raise UsageError(detail=f"{self.path}: negative read offset/length {offset}/{length}")
        length = max(0, min(length, self.size - offset))
        out = bytearray()
        for pos, n in self._pieces(offset, offset + length):
            lo, hi = self._span(pos, n)
            with _Aligned(self.api, hi - lo) as buf:
                try:
                    self._transfer(False, buf, lo, hi - lo)
                except Win32Error as e:
                    raise SourceError(path=self.path, detail=f"Windows error {e.code} reading at byte {lo}") from e
                out += buf.view[pos - lo:pos - lo + n]
        return bytes(out)

    def reader(self) -> WinDisk:
        """What a backup or clone streams the disk through (`core.disk.device.Disk.reader`): itself."""
        return self

    def read(self, offset: int, length: int) -> bytes:
        """`core.io.reader.Reader.read`: fewer bytes only at the end of the disk."""
        return self.pread(offset, length)

    def read_into(self, offset: int, buf: memoryview) -> int:
        """Like `read` into ``buf``; returns the bytes read."""
        data = self.pread(offset, len(buf))
        buf[:len(data)] = data
        return len(data)

    def feed_from_medium(self, offset: int, length: int, sink: Callable[[memoryview], None]) -> int:
        """Read [offset, offset+length) from the disk itself (the handle is unbuffered: no cache can
        answer) in pieces handed to ``sink``; returns the bytes read."""
        done = 0
        length = max(0, min(length, self.size - offset))
        for pos, n in self._pieces(offset, offset + length):
            try:
                piece = self.pread(pos, n)
            except SourceError as e:
                raise TargetWriteError(target=self.path, detail=f"read-back: {e.kwargs.get('detail')}") from e
            sink(memoryview(piece))
            done += len(piece)
        return done

    # --- writing ------------------------------------------------------------------------------------

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview, verify: bool = False) -> tuple[int, int]:
        """Write all of ``data`` at ``offset`` and read it back from the disk at once
        (`VerifyAfterWriteError` on a difference); returns the verified range (``verify`` is accepted
        for the interface of `core.disk.device.Disk`: here every write is verified)."""
        if self.read_only:
            raise TargetWriteError(target=self.path, detail="opened read-only")
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise TargetWriteError(target=self.path, detail=f"write of {len(view)} bytes at {offset} is outside "
                                                            f"the {self.size} bytes")
        ss = self.logical_sector_size
        for pos, n in self._pieces(offset, offset + len(view)):
            lo, hi = self._span(pos, n)
            partial = pos != lo or pos + n != hi
            with _Aligned(self.api, hi - lo) as buf, (self._rmw if partial else _NO_LOCK):
                # A write that starts or ends inside a sector reads that sector first, so its other
                # bytes stay as they are; the lock keeps two such writes sharing a sector in turn.
                try:
                    if pos != lo:
                        self._transfer(False, buf, lo, ss)
                    if pos + n != hi and not (pos != lo and hi - ss == lo):
                        self._transfer(False, buf, hi - ss, ss, into=hi - ss - lo)
                    buf.view[pos - lo:pos - lo + n] = view[pos - offset:pos - offset + n]
                    self._transfer(True, buf, lo, hi - lo)
                except Win32Error as e:
                    raise TargetWriteError(target=self.path, detail=f"Windows error {e.code} writing at byte "
                                                                    f"{lo}") from e
                if lo < TABLE_SECTORS * ss or hi > self.size - TABLE_SECTORS * ss:
                    with self._lock:
                        self._table_touched = True
                self._verify(buf, lo, hi)
        return (offset, offset + len(view)) if len(view) else (0, 0)

    def _verify(self, written: _Aligned, lo: int, hi: int) -> None:
        with _Aligned(self.api, hi - lo) as back:
            try:
                self._transfer(False, back, lo, hi - lo)
            except Win32Error as e:
                raise TargetWriteError(target=self.path, detail=f"read-back: Windows error {e.code} at byte "
                                                                f"{lo}") from e
            if back.view[:hi - lo] != written.view[:hi - lo]:
                raise VerifyAfterWriteError(target=self.path, detail=f"{hi - lo} bytes at byte {lo} read back "
                                                                     "differently right after writing")

    def zero_range(self, offset: int, length: int) -> bool:
        """Write zeros over a sector-aligned range from one zeroed buffer (no zeros built per call);
        False for what it does not take (unaligned, outside the disk), which the caller writes."""
        ss = self.logical_sector_size
        if self.read_only or offset < 0 or length <= 0 or offset + length > self.size or offset % ss or length % ss:
            return False
        with _Aligned(self.api, min(PIECE, length)) as zeros:  # VirtualAlloc'd memory starts zeroed
            for pos, n in self._pieces(offset, offset + length):
                try:
                    self._transfer(True, zeros, pos, n)
                except Win32Error as e:
                    raise TargetWriteError(target=self.path, detail=f"Windows error {e.code} zeroing at byte "
                                                                    f"{pos}") from e
                if pos < TABLE_SECTORS * ss or pos + n > self.size - TABLE_SECTORS * ss:
                    with self._lock:
                        self._table_touched = True
        return True

    def enable_direct(self) -> bool:
        """Every transfer of this disk is already unbuffered (the handle's flags)."""
        return not self.read_only

    def sync(self, drop_cache: bool = False) -> None:
        """FlushFileBuffers; after a partition-table write, IOCTL_DISK_UPDATE_PROPERTIES too. No cache
        to drop: the handle never caches."""
        if self.read_only:
            return
        try:
            self.api.flush_file_buffers(self.handle)
        except Win32Error as e:
            raise TargetWriteError(target=self.path, detail=f"FlushFileBuffers: Windows error {e.code}") from e
        with self._lock:
            touched, self._table_touched = self._table_touched, False
        if touched:
            try:
                self.api.device_io_control(self.handle, c.IOCTL_DISK_UPDATE_PROPERTIES, b"", 0)
            except Win32Error as e:
                # A device without a partition manager (a volume or a drive letter mapped onto a disk,
                # as Wine maps one) has no table for Windows to re-read: nothing is left undone.
                if e.code not in (c.ERROR_NOT_SUPPORTED, c.ERROR_INVALID_FUNCTION):
                    raise TargetWriteError(target=self.path, detail="the partition table is written, but "
                                                                    f"Windows did not re-read it (error {e.code})") from e

    def close(self) -> None:
        if self.handle:
            self.api.close_handle(self.handle)
            self.handle = 0
        if self.locks is not None:
            self.locks.release()  # after the disk: its volumes are unlocked only when we are done
            self.locks = None

    def __enter__(self) -> WinDisk:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def identity(self) -> dict[str, Any]:
        """What identifies this disk in manifests, plans and confirmations (as on Linux, plus its number)."""
        return {"path": self.path, "real_path": self.path, "kind": "block", "size": self.size,
                "logical_sector_size": self.logical_sector_size, "physical_sector_size": self.physical_sector_size,
                "model": self.model, "serial": self.serial, "dev": f"PhysicalDrive{self.number}", "bus": self.bus}


def _number(path: str) -> int:
    n = query.disk_number_of(path)
    if n is None:
        raise UsageError(detail=f"{path} is not a Windows disk name (\\\\.\\PhysicalDriveN)")
    return n


def _open(api: Win32, path: str, access: int, error: Callable[[str], Exception]) -> tuple[int, query.DeviceFacts]:
    try:
        handle = api.create_file(path, access, _SHARE, _UNBUFFERED if access & c.GENERIC_WRITE else
                                 c.FILE_FLAG_NO_BUFFERING)
    except Win32Error as e:
        what = {c.ERROR_FILE_NOT_FOUND: "does not exist", c.ERROR_ACCESS_DENIED: "access denied (run as "
                "administrator)", c.ERROR_SHARING_VIOLATION: "in use by another program"}.get(e.code, "")
        raise error(what or f"cannot open it (Windows error {e.code})") from e
    try:
        return handle, query.facts(api, handle)
    except Win32Error as e:
        api.close_handle(handle)
        raise error(f"disk query failed (Windows error {e.code})") from e
    except BaseException:
        api.close_handle(handle)
        raise


def open_source(path: str, sector_size: int | None = None, *, api: Win32 | None = None) -> WinDisk:
    """Open a disk GENERIC_READ only (share read|write)."""
    api = api or current()
    _number(path)
    handle, f = _open(api, path, c.GENERIC_READ, lambda d: SourceError(path=path, detail=d))
    if sector_size is not None and sector_size != f.logical_sector_size:
        api.close_handle(handle)
        raise UsageError(detail=f"{path} has {f.logical_sector_size}-byte sectors, not the {sector_size} given")
    if f.size == 0:
        api.close_handle(handle)
        raise SourceError(path=path, detail="is empty (no medium)")
    return WinDisk(path=path, number=f.number, handle=handle, api=api, size=f.size,
                   logical_sector_size=f.logical_sector_size, physical_sector_size=f.physical_sector_size,
                   read_only=True, model=f.model, serial=f.serial, bus=f.bus)


def check_target_path(path: str, *, sources: list[str], image_paths: list[str] | None = None,
                      allow_create: bool = False, api: Win32 | None = None) -> None:
    """The refusals that need neither the image's size nor its sector size, without write access."""
    api = api or current()
    _number(path)
    handle, f = _open(api, path, c.GENERIC_READ, lambda d: TargetRefused(target=path, detail=d))
    api.close_handle(handle)
    refuse.check_target(api, path, f.number, sources=sources, image_paths=list(image_paths or []))


def open_target(path: str, *, sources: list[str], required_size: int, sector_size: int,
                image_paths: list[str] | None = None, allow_create: bool = False,
                api: Win32 | None = None) -> WinDisk:
    """Every refusal, then the lock and dismount of each volume on the disk, then the disk opened for
    unbuffered, write-through writing."""
    api = api or current()
    check_target_path(path, sources=sources, image_paths=image_paths, api=api)
    handle, f = _open(api, path, c.GENERIC_READ, lambda d: TargetRefused(target=path, detail=d))
    api.close_handle(handle)
    if f.read_only:
        raise TargetRefused(target=path, detail="is read-only (write-protected)")
    if f.size < required_size:
        raise TargetRefused(target=path, detail=f"is {f.size} bytes, smaller than the {required_size} bytes "
                                                f"needed (short by {required_size - f.size})")
    if f.logical_sector_size != sector_size:
        raise TargetRefused(target=path, detail=f"has {f.logical_sector_size}-byte logical sectors, the image "
                                                f"needs {sector_size}")
    locks = volumes.lock_all(api, path, volumes.on_disk(api, f.number))
    try:
        handle, now = _open(api, path, c.GENERIC_READ | c.GENERIC_WRITE,
                            lambda d: TargetRefused(target=path, detail=f"cannot open for writing: {d}"))
    except BaseException:
        locks.release()
        raise
    disk = WinDisk(path=path, number=now.number, handle=handle, api=api, size=now.size,
                   logical_sector_size=now.logical_sector_size, physical_sector_size=now.physical_sector_size,
                   read_only=False, model=now.model, serial=now.serial, bus=now.bus, locks=locks)
    if (now.number, now.size, now.model, now.serial) != (f.number, f.size, f.model, f.serial):
        disk.close()
        raise TargetRefused(target=path, detail="changed while it was being checked")
    return disk


def recheck(disk: WinDisk) -> None:
    """Refuse when ``disk.path`` no longer names the disk that was opened and shown to the user."""
    handle, f = _open(disk.api, disk.path, c.GENERIC_READ,
                      lambda d: TargetRefused(target=disk.path, detail=f"changed since it was chosen: {d}"))
    disk.api.close_handle(handle)
    changes = [f"{what} {old!r} -> {new!r}" for what, old, new in (
        ("disk number", disk.number, f.number), ("size", disk.size, f.size),
        ("sector size", disk.logical_sector_size, f.logical_sector_size), ("model", disk.model, f.model),
        ("serial", disk.serial, f.serial)) if old != new]
    if changes:
        raise TargetRefused(target=disk.path, detail="changed since it was chosen: " + ", ".join(changes))
