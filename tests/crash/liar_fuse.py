"""A lying restore target: one writable FUSE file that acknowledges writes it does not keep faithfully.

``python3 liar_fuse.py BACKING MOUNTPOINT MODE`` mounts MOUNTPOINT holding one file, ``disk.img``,
stored in BACKING (whose size it reports). MODE is one of

- ``drop:OFF:LEN``: bytes written inside [OFF, OFF+LEN) are acknowledged and thrown away (a disk
  or USB bridge that loses writes);
- ``wrap:SIZE``: a fake-capacity disk: byte X is stored at X mod SIZE, so writes beyond SIZE land
  on (and destroy) earlier data, while reading any address right after writing it looks fine.

Files are opened with ``direct_io`` so every read and write reaches this process with its own offset
and length. It prints ``ready`` once mounted and runs until ``fusermount3 -u MOUNTPOINT``.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

import pyfuse3
import trio

FILE_NAME = b"disk.img"
FILE_INODE = pyfuse3.ROOT_INODE + 1


class LiarFile(pyfuse3.Operations):  # type: ignore[misc]
    def __init__(self, backing: str, mode: str) -> None:
        super().__init__()
        self.fd = os.open(backing, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        kind, *args = mode.split(":")
        self.kind = kind
        self.args = [int(a) for a in args]

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o755
            a.st_size = 0
            a.st_nlink = 2
        elif inode == FILE_INODE:
            a.st_mode = stat.S_IFREG | 0o644
            a.st_size = self.size
            a.st_nlink = 1
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.st_uid = a.st_gid = 0
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        a.attr_timeout = a.entry_timeout = 300
        return a

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if parent_inode != pyfuse3.ROOT_INODE or name != FILE_NAME:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(FILE_INODE)

    async def opendir(self, inode: int, ctx: Any) -> int:
        if inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        if start_id == 0:
            pyfuse3.readdir_reply(token, FILE_NAME, self._attr(FILE_INODE), 1)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode != FILE_INODE:
            raise pyfuse3.FUSEError(errno.EISDIR)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    def _pieces(self, off: int, n: int) -> list[tuple[int, int, int]]:
        """(backing offset, offset in the request, length) of the request's bytes."""
        if self.kind == "wrap":
            cap = self.args[0]
            out = []
            pos = 0
            while pos < n:
                phys = (off + pos) % cap
                k = min(n - pos, cap - phys)
                out.append((phys, pos, k))
                pos += k
            return out
        return [(off, 0, n)]

    async def read(self, fh: int, off: int, size: int) -> bytes:
        size = max(0, min(size, self.size - off))
        out = bytearray(size)
        for phys, rel, k in self._pieces(off, size):
            out[rel:rel + k] = os.pread(self.fd, k, phys)
        return bytes(out)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        if off + len(buf) > self.size:
            raise pyfuse3.FUSEError(errno.ENOSPC)
        data = bytearray(buf)
        if self.kind == "drop":
            lo, hi = max(off, self.args[0]), min(off + len(buf), self.args[0] + self.args[1])
            if lo < hi:  # keep what the backing held there: the write is "lost"
                data[lo - off:hi - off] = os.pread(self.fd, hi - lo, lo)
        for phys, rel, k in self._pieces(off, len(data)):
            os.pwrite(self.fd, data[rel:rel + k], phys)
        return len(buf)

    async def fsync(self, fh: int, datasync: bool) -> None:
        return None

    async def flush(self, fh: int) -> None:
        return None

    async def release(self, fh: int) -> None:
        return None


def main() -> None:
    backing, mountpoint, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    ops = LiarFile(backing, mode)
    options = set(pyfuse3.default_options)
    options |= {"fsname=liar_fuse"}
    pyfuse3.init(ops, mountpoint, options)
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == "__main__":
    main()
