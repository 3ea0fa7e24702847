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
import sys

import pyfuse3

from onefile_fuse import OneFile, serve  # a sibling: this file runs as a script


def parse_ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, text.split(",")):
        off, length = part.split(":")
        out.append((int(off), int(length)))
    return out


class EioFile(OneFile):
    def __init__(self, image: str, bad: list[tuple[int, int]]) -> None:
        self.fd = os.open(image, os.O_RDONLY)
        super().__init__(os.fstat(self.fd).st_size, 0o444, 512)
        self.bad = bad
        self.failed = 0

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if any(off < b_off + b_len and b_off < off + size for b_off, b_len in self.bad):
            self.failed += 1
            raise pyfuse3.FUSEError(errno.EIO)
        return os.pread(self.fd, size, off)


def main() -> None:
    image, mountpoint, ranges = sys.argv[1], sys.argv[2], parse_ranges(sys.argv[3])
    ops = EioFile(image, ranges)
    try:
        serve(ops, mountpoint, {"fsname=eio_fuse", "ro"})
    finally:
        print(f"failed reads: {ops.failed}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
