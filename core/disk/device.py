"""Disks and disk image files behind one interface: open a source read-only, open a target safely.

A `Disk` is either a block device or a regular file (a raw disk image). Both are read and written
with ``pread``/``pwrite`` at byte offsets, and a `Disk` is a `core.io.reader.Reader`, so the
partition and filesystem parsers run on it directly.

- `open_source` never asks for write access (``O_RDONLY``): imaging must not change the source.
- `open_target` runs every safety check (`core.disk.safety`) *before* asking for write access, then
  opens block devices ``O_RDWR | O_EXCL`` so that the kernel refuses a device that is mounted or
  opened exclusively by someone else (the util-linux mkfs rule), closing the race behind the checks.
- `recheck` re-reads what a target looked like when the user chose it, just before writing, so that
  a disk swapped in the meantime (same ``/dev/sdb``, other disk) is refused.

Regular files have no sector size of their own: 512 unless the caller declares another one (a 4Kn
disk imaged to a file keeps 4096).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Literal

from ..io.direct import DirectFile, DirectUnavailable, ReadBackMismatch
from ..io.reader import FdReader, pread_full
from ..io.writeback import Writeback
from ..errors import SourceError, TargetRefused, TargetWriteError, UsageError, VerifyAfterWriteError
from ..platform import files
from . import md, safety, sysblock

DEFAULT_FILE_SECTOR = 512

# Linux logical block sizes are powers of two from 512; 64 KiB is beyond any real disk, so a
# larger "sector size" is a caller bug, not a disk.
_MAX_SECTOR = 65536


def _check_sector_size(sector_size: int) -> None:
    if sector_size < 512 or sector_size > _MAX_SECTOR or sector_size & (sector_size - 1):
        raise UsageError(detail=f"sector size {sector_size} is not a power of two from 512 to {_MAX_SECTOR}")


@dataclass
class Disk:
    """An open disk or disk image file. ``path`` is as the user gave it."""

    path: str
    real_path: str
    kind: Literal["block", "file"]
    fd: int
    size: int
    logical_sector_size: int
    physical_sector_size: int
    read_only: bool
    model: str = ""
    serial: str = ""
    rdev: int = 0  # block devices: device number
    inode: tuple[int, int] = (0, 0)  # regular files: (st_dev, st_ino)
    backing_file: str = ""  # loop devices: the image file behind them
    # An md array started read-only (as the rescue media start every array): opened as a target, it is
    # made writable by `make_writable` once the user confirmed it, not before (core.disk.md)
    array_read_only: bool = False
    footprint: safety.Footprint | None = field(default=None, repr=False)
    _writeback: Writeback | None = field(default=None, repr=False)
    _writeback_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _direct: DirectFile | None = field(default=None, repr=False)

    # --- Reader protocol ---------------------------------------------------------------------------

    def reader(self) -> FdReader:
        """The reader a backup or clone streams the disk through (`read_into` into reused buffers). A
        Windows disk (core.platform.windows.disk.WinDisk) has no descriptor and is its own reader."""
        return FdReader(self.fd, self.size, self.path)

    def read(self, offset: int, length: int) -> bytes:
        """`Reader.read`: fewer bytes only at the end of the disk."""
        return self.pread(offset, length)

    def pread(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` (short only at the end of the disk)."""
        if offset < 0 or length < 0:
            raise UsageError(detail=f"{self.path}: negative read offset/length {offset}/{length}")
        return pread_full(self.fd, offset, max(0, min(length, self.size - offset)), self.path)

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview, verify: bool = False) -> tuple[int, int]:
        """Write all of ``data`` at ``offset``; never past the end of the disk. Safe to call from
        several threads for disjoint ranges.

        With `enable_direct`, the aligned middle [lo, hi) of the write skips the page cache, and with
        ``verify`` it is also read back from the device at once and compared
        (`VerifyAfterWriteError` on a difference). Returns that verified [lo, hi), or (0, 0)."""
        if self.read_only:
            raise TargetWriteError(target=self.path, detail="opened read-only")
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise TargetWriteError(target=self.path,
                                   detail=f"write of {len(view)} bytes at {offset} is outside "
                                          f"the {self.size} bytes")
        direct = self._direct
        if direct is not None and direct.enabled:
            lo, hi = DirectFile.middle(offset, len(view))
            if hi > lo:
                try:
                    direct.pwrite(lo, view[lo - offset:hi - offset], verify)
                except DirectUnavailable:
                    pass  # refused by the filesystem: the buffered path below writes it all
                except ReadBackMismatch as e:
                    raise VerifyAfterWriteError(target=self.path,
                                                detail=f"{e.length} bytes at byte {e.offset} read back "
                                                       "differently right after writing") from None
                except OSError as e:
                    raise TargetWriteError(target=self.path, detail=f"{e.strerror} at byte {lo}") from e
                else:
                    self._buffered_write(offset, view[:lo - offset])
                    self._buffered_write(hi, view[hi - offset:])
                    return (lo, hi) if verify else (0, 0)
        self._buffered_write(offset, view)
        return 0, 0

    def _buffered_write(self, offset: int, view: memoryview) -> None:
        if not len(view):
            return
        done = 0
        while done < len(view):
            try:
                n = files.pwrite(self.fd, view[done:], offset + done)
            except OSError as e:
                raise TargetWriteError(target=self.path,
                                       detail=f"{e.strerror} at byte {offset + done}") from e
            if n <= 0:
                raise TargetWriteError(target=self.path,
                                       detail=f"no progress writing at byte {offset + done}")
            done += n
        with self._writeback_lock:  # workers write concurrently; the write-back hint keeps one range
            if self._writeback is None:
                self._writeback = Writeback(self.fd)
            self._writeback.wrote(offset, len(view))

    def make_writable(self) -> bool:
        """Switch a target md array started read-only to read-write (`core.disk.md.make_writable`);
        True when it was switched. Only for a target the user confirmed: the session's first step."""
        if not self.array_read_only:
            return False
        md.make_writable(self.path, self.rdev)
        self.array_read_only = self.read_only = False
        return True

    def enable_direct(self) -> bool:
        """Write (and read back) the aligned parts of large requests with O_DIRECT (`core.io.direct`
        says why); False where the filesystem or device refuses it. Call before any other thread
        uses the disk."""
        if self._direct is None and not self.read_only:
            self._direct = DirectFile.open(self.fd, True, self.logical_sector_size)
        return self._direct is not None

    def feed_from_medium(self, offset: int, length: int, sink: Callable[[memoryview], None]) -> int:
        """Read [offset, offset+length) as the medium holds it, in pieces handed to ``sink``; returns
        the bytes read. The aligned middle is read direct; the rest (and everything when direct I/O
        is off) through the page cache, which `sync(drop_cache=True)` emptied beforehand. Raises
        `DirectUnavailable` when direct reads turn out to be refused: call again (then buffered)."""
        length = max(0, min(length, self.size - offset))
        direct = self._direct
        if direct is not None and direct.enabled:
            lo, hi = DirectFile.middle(offset, length)
            if hi > lo:
                if lo > offset:
                    sink(memoryview(self.pread(offset, lo - offset)))
                try:
                    # DirectUnavailable (the filesystem refused after all) goes to the caller, who
                    # starts over: the sink may have had part of the data already.
                    got = direct.feed(lo, hi - lo, sink)
                except OSError as e:
                    raise TargetWriteError(target=self.path, detail=f"read-back: {e.strerror} at byte {lo}") from e
                else:
                    if got != hi - lo:
                        return lo - offset + got
                    tail = self.pread(hi, offset + length - hi)
                    sink(memoryview(tail))
                    return hi - offset + len(tail)
        done = 0
        while done < length:
            piece = self.pread(offset + done, min(4 << 20, length - done))
            sink(memoryview(piece))
            done += len(piece)
            if not piece:
                break
        return done

    def zero_range(self, offset: int, length: int) -> bool:
        """Zero a range without sending zeros through memory where the kernel can do it (BLKZEROOUT
        on devices, a punched hole in files); False when it cannot, and the caller writes zeros."""
        if self.read_only or offset < 0 or offset + length > self.size or length <= 0:
            return False
        if offset % 512 or length % 512:
            return False
        try:
            if self.kind == "block":
                import fcntl  # here, not at the top: block devices are Linux's, and Windows has no fcntl
                fcntl.ioctl(self.fd, sysblock.BLKZEROOUT, struct.pack("QQ", offset, length))
            else:
                if _libc_fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
                    return False
        except OSError:
            return False
        return True

    def sync(self, drop_cache: bool = False) -> None:
        """fsync; ``drop_cache`` also drops cached pages so a read-back really reads the medium."""
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise TargetWriteError(target=self.path, detail=f"fsync: {e.strerror}") from e
        if not drop_cache:
            return
        try:
            if self.kind == "block":
                sysblock.ioctl_int(self.fd, sysblock.BLKFLSBUF)
            else:
                files.drop_cache(self.fd)
        except OSError:
            pass  # dropping the cache is best effort: the data is already on the medium after fsync

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Disk:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def identity(self) -> dict[str, Any]:
        """What identifies this disk in manifests, logs and confirmations."""
        out: dict[str, Any] = {
            "path": self.path,
            "real_path": self.real_path,
            "kind": self.kind,
            "size": self.size,
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "model": self.model,
            "serial": self.serial,
        }
        if self.kind == "block":
            out["dev"] = sysblock.dev_name(self.rdev)
        if self.backing_file:
            out["backing_file"] = self.backing_file
        return out


def _block_geometry(fd: int) -> tuple[int, int, int, bool]:
    """(size, logical, physical, read_only) of an open block device."""
    size = sysblock.ioctl_int(fd, sysblock.BLKGETSIZE64, "Q")
    logical = sysblock.ioctl_int(fd, sysblock.BLKSSZGET, "i")
    physical = sysblock.ioctl_int(fd, sysblock.BLKPBSZGET, "I")
    read_only = sysblock.ioctl_int(fd, sysblock.BLKROGET, "i") != 0
    return size, logical, physical, read_only


def _block_disk(path: str, fd: int, st: os.stat_result, writable: bool) -> Disk:
    size, logical, physical, ro = _block_geometry(fd)
    model, serial = sysblock.model_serial(st.st_rdev)
    return Disk(path=path, real_path=os.path.realpath(path), kind="block", fd=fd, size=size,
                logical_sector_size=logical, physical_sector_size=physical, read_only=ro or not writable,
                model=model, serial=serial, rdev=st.st_rdev,
                backing_file=sysblock.loop_backing_file(st.st_rdev) or "")


def _file_disk(path: str, fd: int, st: os.stat_result, sector_size: int, writable: bool) -> Disk:
    return Disk(path=path, real_path=os.path.realpath(path), kind="file", fd=fd, size=st.st_size,
                logical_sector_size=sector_size, physical_sector_size=sector_size, read_only=not writable,
                inode=(st.st_dev, st.st_ino))


def open_source(path: str, sector_size: int | None = None) -> Disk:
    """Open a disk or image file read-only.

    ``sector_size`` declares the logical sector size of an image file (default 512); for a block
    device the kernel's value is used and a different declared value is a `UsageError`.
    """
    if sector_size is not None:
        _check_sector_size(sector_size)
    try:
        fd = files.open_fd(path, os.O_RDONLY | files.CLOEXEC)
    except FileNotFoundError as e:
        raise SourceError(path=path, detail="does not exist") from e
    except IsADirectoryError as e:
        raise SourceError(path=path, detail="is a directory, not a disk or image file") from e
    except OSError as e:
        raise SourceError(path=path, detail=e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if stat.S_ISBLK(st.st_mode):
            try:
                disk = _block_disk(path, fd, st, writable=False)
            except OSError as e:
                raise SourceError(path=path, detail=f"block device query failed: {e.strerror}") from e
            if sector_size is not None and sector_size != disk.logical_sector_size:
                raise UsageError(detail=f"{path} has {disk.logical_sector_size}-byte sectors, "
                                        f"not the {sector_size} given")
        elif stat.S_ISREG(st.st_mode):
            disk = _file_disk(path, fd, st, sector_size or DEFAULT_FILE_SECTOR, writable=False)
        elif stat.S_ISDIR(st.st_mode):
            raise SourceError(path=path, detail="is a directory, not a disk or image file")
        else:
            raise SourceError(path=path, detail="is not a block device or regular file")
        if disk.size == 0:
            raise SourceError(path=path, detail="is empty (no medium, or a loop device with no file)")
    except BaseException:
        os.close(fd)
        raise
    disk.read_only = True
    return disk


def check_target_path(path: str, *, sources: list[str], image_paths: list[str] | None = None,
                      allow_create: bool = False) -> safety.Footprint:
    """The checks of `open_target` that need neither the image's size nor its sector size (it exists, is
    a disk or file, is no source, holds no image, is not mounted or read-only), without opening it: a
    restore makes them before it checks the image and asks for its password. Returns the footprint."""
    if not os.path.exists(path):
        if not allow_create:
            raise TargetRefused(target=path, detail="does not exist")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise TargetRefused(target=path, detail=f"folder {parent} does not exist")
    st = os.stat(path) if os.path.exists(path) else None
    if st is not None and not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise TargetRefused(target=path, detail="is not a block device or regular file")
    # Checks first, on paths only: an alias of the source is refused before anything opens it for writing.
    fp = safety.check_target(path, sources, list(image_paths or []))
    if st is not None and stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222:
        # Root could write it anyway (file modes do not bind root), but nobody may: its owner made it read-only.
        raise TargetRefused(target=path, detail=f"is read-only (mode {stat.S_IMODE(st.st_mode):03o})")
    return fp


def open_target(path: str, *, sources: list[str], required_size: int, sector_size: int,
                image_paths: list[str] | None = None, allow_create: bool = False) -> Disk:
    """Open a restore/clone target for writing after every safety check passes.

    Refuses (`TargetRefused`) a target that is a source under any alias, is mounted / swap / held,
    holds the images, is read-only, is smaller than ``required_size`` or has another logical sector
    size than ``sector_size``. A regular file is created (and sized to ``required_size``) only with
    ``allow_create``; an existing file is never resized.
    """
    _check_sector_size(sector_size)
    fp = check_target_path(path, sources=sources, image_paths=image_paths, allow_create=allow_create)
    st = os.stat(path) if os.path.exists(path) else None
    if st is not None and stat.S_ISBLK(st.st_mode):
        disk = _open_block_target(path, st, required_size, sector_size)
    else:
        disk, _ = _open_file_target(path, required_size, sector_size, allow_create)
    disk.footprint = fp
    return disk


def _refuse_geometry(path: str, size: int, logical: int, read_only: bool, required_size: int,
                     sector_size: int) -> None:
    if read_only:
        raise TargetRefused(target=path, detail="is read-only")
    if size < required_size:
        raise TargetRefused(target=path, detail=f"is {size} bytes, smaller than the {required_size} bytes "
                                                f"needed (short by {required_size - size})")
    if logical != sector_size:
        raise TargetRefused(target=path,
                            detail=f"has {logical}-byte logical sectors, the image needs {sector_size}")


def _open_block_target(path: str, st: os.stat_result, required_size: int, sector_size: int) -> Disk:
    try:
        probe = files.open_fd(path, os.O_RDONLY | files.CLOEXEC)
    except OSError as e:
        raise TargetRefused(target=path, detail=f"cannot open: {e.strerror}") from e
    try:
        size, logical, _, ro = _block_geometry(probe)
    except OSError as e:
        raise TargetRefused(target=path, detail=f"block device query failed: {e.strerror}") from e
    finally:
        os.close(probe)
    # an md array started read-only is a target the session makes writable (Disk.make_writable)
    array_ro = ro and _read_only_array(st.st_rdev)
    _refuse_geometry(path, size, logical, ro and not array_ro, required_size, sector_size)
    try:
        fd = files.open_fd(path, os.O_RDWR | os.O_EXCL | files.CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise TargetRefused(target=path, detail="in use (another program has it open exclusively, "
                                                    "or it is mounted or held)") from e
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise TargetRefused(target=path, detail=f"is read-only ({e.strerror})") from e
        raise TargetRefused(target=path, detail=f"cannot open for writing: {e.strerror}") from e
    try:
        now = os.fstat(fd)
        if now.st_rdev != st.st_rdev:
            raise TargetRefused(target=path, detail="changed while it was being checked")
        disk = _block_disk(path, fd, now, writable=True)
        disk.array_read_only = array_ro
        _refuse_geometry(path, disk.size, disk.logical_sector_size, disk.read_only and not array_ro,
                         required_size, sector_size)
    except BaseException:
        os.close(fd)
        raise
    return disk


def _read_only_array(rdev: int) -> bool:
    a = md.array(rdev)
    return a is not None and a.read_only and not a.is_container


def _open_file_target(path: str, required_size: int, sector_size: int,
                      allow_create: bool) -> tuple[Disk, bool]:
    flags = os.O_RDWR | files.CLOEXEC
    created = False
    if allow_create and not os.path.exists(path):
        flags |= os.O_CREAT | os.O_EXCL  # O_EXCL: never take over a file that appeared meanwhile
        created = True
    try:
        fd = files.open_fd(path, flags, 0o644)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise TargetRefused(target=path, detail=f"is read-only ({e.strerror})") from e
        raise TargetRefused(target=path, detail=f"cannot open for writing: {e.strerror}") from e
    try:
        if created:
            os.ftruncate(fd, required_size)  # sparse: only written blocks take space
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TargetRefused(target=path, detail="is not a regular file")
        _refuse_geometry(path, st.st_size, sector_size, False, required_size, sector_size)
        disk = _file_disk(path, fd, st, sector_size, writable=True)
    except BaseException as e:
        os.close(fd)
        if created:
            os.unlink(path)  # a file we created for a refused or failed target is ours to remove
        if isinstance(e, OSError):
            raise TargetRefused(target=path, detail=f"cannot size or stat the file: {e.strerror}") from e
        raise
    return disk, created


def recheck(disk: Disk) -> None:
    """Refuse when ``disk.path`` no longer names the disk that was opened and shown to the user."""
    try:
        st = os.stat(disk.path)
    except OSError as e:
        raise TargetRefused(target=disk.path, detail=f"changed since it was chosen: {e.strerror}") from e
    changes: list[str] = []
    if disk.kind == "block":
        if not stat.S_ISBLK(st.st_mode) or st.st_rdev != disk.rdev:
            raise TargetRefused(target=disk.path, detail="changed since it was chosen: now another device")
        try:
            fd = files.open_fd(disk.path, os.O_RDONLY | files.CLOEXEC)
        except OSError as e:
            raise TargetRefused(target=disk.path, detail=f"changed since it was chosen: {e.strerror}") from e
        try:
            size, logical, _, _ = _block_geometry(fd)
        except OSError as e:
            raise TargetRefused(target=disk.path, detail=f"changed since it was chosen: {e.strerror}") from e
        finally:
            os.close(fd)
        model, serial = sysblock.model_serial(st.st_rdev)
        if logical != disk.logical_sector_size:
            changes.append(f"sector size {disk.logical_sector_size} -> {logical}")
        if model != disk.model:
            changes.append(f"model {disk.model!r} -> {model!r}")
        if serial != disk.serial:
            changes.append(f"serial {disk.serial!r} -> {serial!r}")
        backing = sysblock.loop_backing_file(st.st_rdev) or ""
        if backing != disk.backing_file:
            changes.append(f"loop backing file {disk.backing_file!r} -> {backing!r}")
    else:
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != disk.inode:
            raise TargetRefused(target=disk.path, detail="changed since it was chosen: now another file")
        size = st.st_size
    if size != disk.size:
        changes.append(f"size {disk.size} -> {size} bytes")
    if changes:
        raise TargetRefused(target=disk.path, detail="changed since it was chosen: " + ", ".join(changes))


if sys.platform == "win32":
    # The one place the disk backend is chosen by platform: on Windows, disks (\\.\PhysicalDriveN)
    # go to core.platform.windows; image files stay with the code above.
    from ..platform.windows.backend import routed

    open_source, open_target, check_target_path, recheck = routed(open_source, open_target, check_target_path,
                                                                  recheck)


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _libc_fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """fallocate(2) with a mode (os.posix_fallocate has none); -1 where libc lacks it."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return -1
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    return int(fn(fd, mode, offset, length))
