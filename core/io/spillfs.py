"""A one-file FUSE filesystem that lets ntfsresize shrink a volume straight onto a smaller target.

The file ``volume`` is as long as the volume was on the source. Its first ``new_size`` bytes are the
target partition itself (``target`` at ``offset``); the bytes beyond live in a sparse spill file. The
restore writes the partition's data through the same mapping, then ntfsresize, run on a loop device over
``volume``, moves the clusters that lie beyond ``new_size`` inside it. Scratch space is therefore only
the used data beyond the new end, and neither the image nor the source is ever modified.

Run as ``python3 -m core.io.spillfs MOUNTDIR TARGET OFFSET NEW_SIZE SPILL TOTAL_SIZE``; it serves in the
foreground until unmounted (``fusermount3 -u MOUNTDIR``).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

import pyfuse3
import trio

from ..platform import files

FILE_INODE = pyfuse3.ROOT_INODE + 1
NAME = b"volume"


class SpillFS(pyfuse3.Operations):
    def __init__(self, target: str, offset: int, new_size: int, spill: str, total: int) -> None:
        super().__init__()
        self.tfd = files.open_fd(target, os.O_RDWR | files.CLOEXEC)
        self.sfd = files.open_fd(spill, os.O_RDWR | os.O_CREAT | files.CLOEXEC, 0o600)
        self.offset = offset
        self.new_size = new_size
        self.total = total

    def _split(self, off: int, n: int) -> list[tuple[int, int, int, int]]:
        """(fd, file offset, start in buffer, length) pieces of [off, off+n)."""
        out = []
        end = min(off + n, self.total)
        if off < self.new_size:
            k = min(end, self.new_size) - off
            if k > 0:
                out.append((self.tfd, self.offset + off, 0, k))
        if end > self.new_size:
            lo = max(off, self.new_size)
            out.append((self.sfd, lo - self.new_size, lo - off, end - lo))
        return out

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o755
            a.st_nlink = 2
        elif inode == FILE_INODE:
            a.st_mode = stat.S_IFREG | 0o600
            a.st_nlink = 1
            a.st_size = self.total
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.attr_timeout = a.entry_timeout = 3600
        return a

    async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if parent != pyfuse3.ROOT_INODE or name != NAME:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(FILE_INODE)

    async def opendir(self, inode: int, ctx: Any) -> int:
        if inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        if start_id == 0:
            pyfuse3.readdir_reply(token, NAME, await self.getattr(FILE_INODE), 1)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode != FILE_INODE:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        buf = bytearray(max(0, min(size, self.total - off)))
        for fd, foff, boff, n in self._split(off, size):
            data = files.pread(fd, n, foff)
            buf[boff:boff + len(data)] = data
        return bytes(buf)

    async def write(self, fh: int, off: int, data: bytes) -> int:
        if off + len(data) > self.total:
            raise pyfuse3.FUSEError(errno.ENOSPC)
        view = memoryview(data)
        for fd, foff, boff, n in self._split(off, len(data)):
            files.pwrite(fd, view[boff:boff + n], foff)
        return len(data)

    async def fsync(self, fh: int, datasync: bool) -> None:
        os.fsync(self.tfd)
        os.fsync(self.sfd)

    async def flush(self, fh: int) -> None:
        os.fsync(self.tfd)

    async def release(self, fh: int) -> None:
        os.fsync(self.tfd)


def main(argv: list[str]) -> int:
    mountdir, target, offset, new_size, spill, total = argv
    fs = SpillFS(target, int(offset), int(new_size), spill, int(total))
    options = set(pyfuse3.default_options)
    options.add("fsname=rescue-spill")
    options.discard("default_permissions")
    pyfuse3.init(fs, mountdir, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
