"""The read-only pyfuse3 filesystem that serves an image's partitions as files.

Every byte comes from `DiskView.read`, so it is authenticated and digest-checked; a read that touches a
damaged chunk (or a volume that went missing, or an I/O error on the backup drive) fails with EIO and
the reason goes to the log: a reader never sees wrong data. A read whose chunks are all decoded already is
answered on the event loop; the others run in worker threads (zstd, AES-GCM and BLAKE3 release the GIL),
and the view's chunk cache bounds memory. A sequential reader gets the next chunk decoded ahead of it
(`DiskView.prefetch`), and every chunk decoded is handed whole to the kernel's page cache of the open
raw files (`Storer`), so the rest of it never has to be decoded again. Nothing is ever written.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections import OrderedDict
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
# Sequential streams: a read that starts where a recent one ended, or up to SEQ_GAP after (the kernel
# asks only for what its page cache lacks, and `Storer` fills it a chunk at a time), continues its stream.
# Once a stream spans SEQ_RUN bytes, the chunk PREFETCH_AHEAD bytes past each of its reads is decoded in
# the background: a 4 MiB chunk takes ~8 ms to decode (bench/RESULTS.md, Browsing), so the stream reaches it ready
# instead of waiting. Shorter runs (small files) get no prefetch: their next read is usually elsewhere.
SEQ_RUN = 4 << 20
SEQ_GAP = 4 << 20
PREFETCH_AHEAD = 2 << 20
STREAMS = 8  # streams followed at once (ntfs-3g interleaves a file's data with metadata reads)
# A chunk holds 4 MiB of used data, in disk order: its pieces are looked for this far either side of
# the read that decoded it (further where free space lies between; what is missed is only decoded again).
STORE_WINDOW = 32 << 20


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
        self._streams: OrderedDict[int, int] = OrderedDict()  # disk offset where a stream ends -> its start
        self._opened: set[int] = set()  # raw inodes opened (whose page cache a decoded chunk may fill)
        self.storer = Storer(self)
        view.on_decode = self.storer.offer
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
        if inode != INFO:
            self._opened.add(inode)
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if fh == INFO:
            return self.info[off:off + size]
        e = self.items[fh - RAW_BASE]
        if off >= e.size or size <= 0:
            return b""
        n = min(size, e.size - off)
        start = e.start + off
        # Followed as the requests arrive (the kernel's order), not as they finish.
        try:
            self._follow(start, n)
        except Exception:  # noqa: BLE001 - only a hint: a damaged table fails the read that needs it
            pass
        try:
            # A cache hit is a copy: answering it here saves the round trip through a worker thread,
            # which costs more than the copy. A failure here is retried (and reported) below.
            data = self.view.cached(start, n)
        except Exception:  # noqa: BLE001
            data = None
        try:
            if data is None:
                data = await trio.to_thread.run_sync(self.view.read, start, n, limiter=self._limiter)
        except Exception as err:  # noqa: BLE001 - any failure must become EIO, never take the mount down
            self.failed_reads += 1
            reason = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
            if reason not in self._logged and len(self._logged) < MAX_LOGGED:
                self._logged.add(reason)
                log.error("read of %s at byte %d (+%d) failed, returning EIO: %s", e.name, off, n, reason)
            raise pyfuse3.FUSEError(errno.EIO) from None
        return data

    def _follow(self, start: int, n: int) -> None:
        """Track sequential streams; prefetch ahead of a long one."""
        origin = start
        for end, first in self._streams.items():
            if end <= start <= end + SEQ_GAP:
                del self._streams[end]
                origin = first
                break
        self._streams[start + n] = origin
        while len(self._streams) > STREAMS:
            self._streams.popitem(last=False)
        if start + n - origin >= SEQ_RUN:
            self.view.prefetch(start + n + PREFETCH_AHEAD)

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


class Storer:
    """Hands each chunk the view decodes, whole, to the kernel's page cache of the raw files open.

    Small files scattered over the disk made the mount decode each 4 MiB chunk again and again (164
    decodes of 56 chunks to copy a 399-file folder, bench/browse.py): a read needs a few KiB of a chunk,
    and by the time a neighbouring file wants another part of it, the chunk has left the view's cache,
    which memory bounds (16 chunks). Stored in the page cache (`notify_store`), the rest of the chunk is
    there when asked for and the kernel reclaims it under memory pressure like any cache. Only verified
    bytes are stored: the view calls `offer` after the digest check.

    One thread, fed through a short queue: the store waits for page locks that a read in flight holds
    until the event loop answers it, so it must not run on the loop; a chunk that finds the queue full
    is not stored (it would only be decoded again if asked for).
    """

    def __init__(self, fs: ImageFS) -> None:
        self.fs = fs
        self.stored = 0  # bytes handed to the kernel (tests, logging)
        self._queue: queue.Queue[tuple[int, int, bytes, int] | None] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._enabled = True
        self._lock = threading.Lock()

    def offer(self, ref: int, number: int, data: bytes, near: int) -> None:
        if not self._enabled:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((ref, number, data, near))
        except queue.Full:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Before the FUSE session closes: no store may run on a freed session."""
        self._enabled = False
        with self._lock:
            thread = self._thread
        if thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._enabled:
                try:
                    self._store(*item)
                except Exception:  # noqa: BLE001 - a damaged table block: the read that needs it reports it
                    pass

    def _store(self, ref: int, number: int, data: bytes, near: int) -> None:
        fs = self.fs
        pieces = fs.view.pieces(ref, number, near - STORE_WINDOW, near + STORE_WINDOW)
        # Pieces adjacent on the disk and in the chunk go as one store.
        runs: list[list[int]] = []
        for lo, n, at in pieces:
            if runs and runs[-1][0] + runs[-1][1] == lo and runs[-1][2] + runs[-1][1] == at:
                runs[-1][1] += n
            else:
                runs.append([lo, n, at])
        mem = memoryview(data)
        for inode in list(fs._opened):
            e = fs.items[inode - RAW_BASE]
            try:
                for lo, n, at in runs:
                    a, b = max(lo, e.start), min(lo + n, e.start + e.size)
                    if a < b and self._enabled:
                        # pyfuse3 takes any buffer (its stub says bytes): a view of the chunk, not a copy.
                        pyfuse3.notify_store(inode, a - e.start, mem[at + a - lo:at + b - lo])  # type: ignore[arg-type]
                        self.stored += b - a
            except OSError as err:
                if err.errno == errno.ENOSYS:  # a kernel without it: stop trying
                    self._enabled = False
                    log.info("not storing decoded chunks in the page cache: %s", err)
                else:  # ENOENT: the kernel forgot the file since it was opened; its next open adds it again
                    fs._opened.discard(inode)
