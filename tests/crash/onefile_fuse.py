"""The shared part of this folder's FUSE shims (eio_fuse.py, liar_fuse.py): one file, ``disk.img``,
in the root of the mount, whose bytes a subclass serves; and the mount-and-serve loop.

The shims run as scripts (``python3 eio_fuse.py ...``), so they import this module as a sibling.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import pyfuse3
import trio

FILE_NAME = b"disk.img"
FILE_INODE = pyfuse3.ROOT_INODE + 1


class OneFile(pyfuse3.Operations):  # type: ignore[misc]
    """A root directory holding ``disk.img`` of ``size`` bytes with ``mode``; files open ``direct_io``,
    so every read and write reaches the subclass with its own offset and length (no page cache, no
    readahead). Subclasses implement ``read`` (and ``write`` when writable)."""

    def __init__(self, size: int, mode: int, blksize: int) -> None:
        super().__init__()
        self.size = size
        self.mode = mode
        self.blksize = blksize

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o755
            a.st_size = 0
            a.st_nlink = 2
        elif inode == FILE_INODE:
            a.st_mode = stat.S_IFREG | self.mode
            a.st_size = self.size
            a.st_nlink = 1
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.st_uid = a.st_gid = 0
        a.st_blksize = self.blksize
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
        if not self.mode & 0o200 and flags & (os.O_WRONLY | os.O_RDWR):
            raise pyfuse3.FUSEError(errno.EROFS)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def release(self, fh: int) -> None:
        return None


def serve(ops: OneFile, mountpoint: str, options: set[str]) -> None:
    """Mount, print ``ready`` (the tests wait for it), serve until unmounted."""
    pyfuse3.init(ops, mountpoint, set(pyfuse3.default_options) | options)
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
