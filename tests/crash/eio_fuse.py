"""A bad-sector shim for R-14 and R-18: one read-only FUSE file that serves a disk image and fails
chosen bytes, or every read from a point on.

``python3 eio_fuse.py IMAGE MOUNTPOINT OFF:LEN[,OFF:LEN...] [BYTES:ERRNO]`` mounts MOUNTPOINT holding
one file, ``disk.img``, whose bytes are IMAGE's; any read that touches one of the listed byte ranges
fails with EIO, as a disk's unreadable sector does. With ``BYTES:ERRNO`` (``EIO`` or ``ENODEV``), once
BYTES have been served every later read fails with that error, as when a USB disk is pulled (EIO
while the kernel still has the device, ENODEV once it is gone). Files are opened with ``direct_io``
so the kernel passes each read through with its own offset and length (no page-cache rounding, no
readahead): a 512-byte read next to a bad range succeeds, exactly as on a real disk. It prints
``ready`` once mounted and runs until ``fusermount3 -u MOUNTPOINT``; the count of failed reads goes
to stderr at exit.
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
    def __init__(self, image: str, bad: list[tuple[int, int]], pull: tuple[int, int] | None = None) -> None:
        self.fd = os.open(image, os.O_RDONLY)
        super().__init__(os.fstat(self.fd).st_size, 0o444, 512)
        self.bad = bad
        self.pull = pull  # (bytes served before the disk goes, the errno every later read gets)
        self.served = 0
        self.failed = 0

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if self.pull is not None and self.served >= self.pull[0]:
            self.failed += 1
            raise pyfuse3.FUSEError(self.pull[1])
        if any(off < b_off + b_len and b_off < off + size for b_off, b_len in self.bad):
            self.failed += 1
            raise pyfuse3.FUSEError(errno.EIO)
        data = os.pread(self.fd, size, off)
        self.served += len(data)
        return data


def main() -> None:
    image, mountpoint, ranges = sys.argv[1], sys.argv[2], parse_ranges(sys.argv[3])
    pull = None
    if len(sys.argv) > 4:
        after, name = sys.argv[4].split(":")
        pull = (int(after), {"EIO": errno.EIO, "ENODEV": errno.ENODEV}[name])
    ops = EioFile(image, ranges, pull)
    try:
        serve(ops, mountpoint, {"fsname=eio_fuse", "ro"})
    finally:
        print(f"failed reads: {ops.failed}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
