"""The read-only pyfuse3 filesystem that serves an image's partitions as files.

Every byte comes from `DiskView.read`, so it is authenticated and digest-checked; a read that touches a
damaged chunk (or a volume that went missing, or an I/O error on the backup drive) fails with EIO and
the reason goes to the log: a reader never sees wrong data. Reads run in worker threads (zstd, AES-GCM
and BLAKE3 release the GIL) and the view's chunk cache bounds memory. Nothing is ever written.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from typing import Any

import pyfuse3
import trio

from core.engine.view import DiskView

from .layout import Entry

log = logging.getLogger("rescue.mount")

ROOT = pyfuse3.ROOT_INODE
RAW_DIR = ROOT + 1
INFO = ROOT + 2
RAW_BASE = 100  # .raw/<entry i> is inode RAW_BASE + i
DIR_BASE = 10000  # MOUNTPOINT/pN as a directory (a mountpoint for ntfs-3g/fusefat) is DIR_BASE + i
RAW_NAME = b".raw"
INFO_NAME = b"mount.json"
# Concurrent chunk reads: two cores decode in parallel; more threads would only add cache churn.
READ_THREADS = 4
# Distinct failure messages remembered so a damaged chunk is logged once, not on every retry; the cap
# keeps a badly damaged image from growing this set without bound.
MAX_LOGGED = 1000
# Attributes and directory entries never change while mounted: let the kernel cache them.
TIMEOUT = 3600.0


class ImageFS(pyfuse3.Operations):  # type: ignore[misc]
    def __init__(self, view: DiskView, items: list[Entry], browse: set[str], info: bytes) -> None:
        """``browse``: names of entries shown at the top level as directories (something is mounted
        on them); the other partitions are shown there as their raw file."""
        super().__init__()
        self.view = view
        self.items = items
        self.browse = browse
        self.info = info
        self.failed_reads = 0
        self._logged: set[str] = set()
        self._limiter = trio.CapacityLimiter(READ_THREADS)
        self._time_ns = time.time_ns()
        self._top: dict[bytes, int] = {RAW_NAME: RAW_DIR}
        self._raw: dict[bytes, int] = {INFO_NAME: INFO}
        for i, e in enumerate(items):
            self._raw[e.name.encode()] = RAW_BASE + i
            if e.number > 0:
                self._top[e.name.encode()] = (DIR_BASE if e.name in browse else RAW_BASE) + i

    # --- attributes -----------------------------------------------------------------------------
    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode in (ROOT, RAW_DIR) or DIR_BASE <= inode < DIR_BASE + len(self.items):
            a.st_mode = stat.S_IFDIR | 0o555
            a.st_size = 0
            a.st_nlink = 2
        elif inode == INFO:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.info)
            a.st_nlink = 1
        elif RAW_BASE <= inode < RAW_BASE + len(self.items):
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = self.items[inode - RAW_BASE].size
            a.st_nlink = 1
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.st_uid = a.st_gid = 0
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self._time_ns
        a.attr_timeout = a.entry_timeout = TIMEOUT
        return a

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        table = self._top if parent_inode == ROOT else self._raw if parent_inode == RAW_DIR else None
        if table is None or name not in table:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(table[name])

    # --- directories ----------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: Any) -> int:
        if inode not in (ROOT, RAW_DIR) and not DIR_BASE <= inode < DIR_BASE + len(self.items):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        table = self._top if fh == ROOT else self._raw if fh == RAW_DIR else {}
        names = sorted(table.items())
        for i in range(start_id, len(names)):
            name, inode = names[i]
            if not pyfuse3.readdir_reply(token, name, self._attr(inode), i + 1):
                break

    async def releasedir(self, fh: int) -> None:
        return None

    # --- files ----------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode != INFO and not RAW_BASE <= inode < RAW_BASE + len(self.items):
            raise pyfuse3.FUSEError(errno.EISDIR if inode in (ROOT, RAW_DIR) else errno.ENOENT)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EROFS)
        # The content never changes, so the kernel may keep its page cache across opens.
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if fh == INFO:
            return self.info[off:off + size]
        e = self.items[fh - RAW_BASE]
        if off >= e.size or size <= 0:
            return b""
        n = min(size, e.size - off)
        try:
            return await trio.to_thread.run_sync(self.view.read, e.start + off, n, limiter=self._limiter)
        except Exception as err:  # noqa: BLE001 - any failure must become EIO, never take the mount down
            self.failed_reads += 1
            reason = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
            if reason not in self._logged and len(self._logged) < MAX_LOGGED:
                self._logged.add(reason)
                log.error("read of %s at byte %d (+%d) failed, returning EIO: %s", e.name, off, n, reason)
            raise pyfuse3.FUSEError(errno.EIO) from None

    async def release(self, fh: int) -> None:
        return None

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = sum(e.size for e in self.items if e.number == 0) // 4096
        s.f_bfree = s.f_bavail = 0
        s.f_files = len(self._raw) + len(self._top)
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s
