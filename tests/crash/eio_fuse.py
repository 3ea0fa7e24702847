"""A bad-sector shim for R-14: one read-only FUSE file that serves a disk image and fails chosen bytes.

``python3 eio_fuse.py IMAGE MOUNTPOINT OFF:LEN[,OFF:LEN...]`` mounts MOUNTPOINT holding one file,
``disk.img``, whose bytes are IMAGE's; any read that touches one of the listed byte ranges fails with
EIO, as a disk's unreadable sector does. Files are opened with ``direct_io`` so the kernel passes
each read through with its own offset and length (no page-cache rounding, no readahead): a 512-byte
read next to a bad range succeeds, exactly as on a real disk. It prints ``ready`` once mounted and
runs until ``fusermount3 -u MOUNTPOINT``; the count of failed reads goes to stderr at exit.
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


def parse_ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, text.split(",")):
        off, length = part.split(":")
        out.append((int(off), int(length)))
    return out


class EioFile(pyfuse3.Operations):  # type: ignore[misc]
    def __init__(self, image: str, bad: list[tuple[int, int]]) -> None:
        super().__init__()
        self.fd = os.open(image, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.bad = bad
        self.failed = 0

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o755
            a.st_size = 0
            a.st_nlink = 2
        elif inode == FILE_INODE:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = self.size
            a.st_nlink = 1
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.st_uid = a.st_gid = 0
        a.st_blksize = 512
        a.st_blocks = (a.st_size + 511) // 512
        # Attributes never change: let the kernel cache them for a long time.
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
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise pyfuse3.FUSEError(errno.EROFS)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if any(off < b_off + b_len and b_off < off + size for b_off, b_len in self.bad):
            self.failed += 1
            raise pyfuse3.FUSEError(errno.EIO)
        return os.pread(self.fd, size, off)

    async def release(self, fh: int) -> None:
        return None


def main() -> None:
    image, mountpoint, ranges = sys.argv[1], sys.argv[2], parse_ranges(sys.argv[3])
    ops = EioFile(image, ranges)
    options = set(pyfuse3.default_options)
    options |= {"fsname=eio_fuse", "ro"}
    pyfuse3.init(ops, mountpoint, options)
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
        print(f"failed reads: {ops.failed}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
