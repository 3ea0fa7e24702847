"""Write a directory tree as a newc cpio archive (the initramfs format), compressed with zstd.

Written here rather than with cpio(1) so that the build needs no root: every entry is owned by root
(uid/gid 0) whoever builds it, device nodes (/dev/console, which the kernel opens before /init runs)
are plain header entries, and timestamps are fixed so the same tree gives the same archive.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Node:
    """A device node to add that does not exist in the tree (creating it there would need root)."""

    path: str  # inside the archive, no leading slash
    mode: int  # including S_IFCHR / S_IFBLK
    major: int
    minor: int


class _Writer:
    def __init__(self, out: BinaryIO, mtime: int) -> None:
        self.out = out
        self.mtime = mtime
        self.ino = 0

    def entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.ino += 1
        raw = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, self.mtime, len(data), 0, 0,
                  rdev[0], rdev[1], len(raw), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(header + raw + b"\0" * (-(len(header) + len(raw)) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))


def write_cpio(root: Path, out: BinaryIO, nodes: list[Node], mtime: int = 0) -> int:
    """Archive ``root`` (parents before children, sorted) plus ``nodes``; returns the entry count."""
    w = _Writer(out, mtime)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = base / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                w.entry(rel, stat.S_IFLNK | 0o777, os.readlink(p).encode())
            elif stat.S_ISDIR(st.st_mode):
                w.entry(rel, stat.S_IFDIR | (st.st_mode & 0o7777))
            elif stat.S_ISREG(st.st_mode):
                w.entry(rel, stat.S_IFREG | (st.st_mode & 0o7777), p.read_bytes())
    for n in nodes:
        w.entry(n.path, n.mode, rdev=(n.major, n.minor))
    w.entry(TRAILER, 0)
    return w.ino


def write_initramfs(root: Path, dest: Path, nodes: list[Node], level: int = 12) -> None:
    """``root`` as a zstd-compressed newc archive at ``dest`` (kernel CONFIG_RD_ZSTD, Debian has it).

    Level 12 with all cores: within a few percent of level 19's size at a fraction of the time.
    """
    cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_content_size=False)
    tmp = dest.with_name(dest.name + ".tmp")
    with tmp.open("wb") as f, cctx.stream_writer(f, closefd=False) as z:
        write_cpio(root, z, nodes)
    tmp.replace(dest)
