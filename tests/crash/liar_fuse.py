"""A lying restore target: one writable FUSE file that acknowledges writes it does not keep faithfully.

``python3 liar_fuse.py BACKING MOUNTPOINT MODE`` mounts MOUNTPOINT holding one file, ``disk.img``,
stored in BACKING (whose size it reports). MODE is one of

- ``drop:OFF:LEN``: bytes written inside [OFF, OFF+LEN) are acknowledged and thrown away (a disk
  or USB bridge that loses writes);
- ``wrap:SIZE``: a fake-capacity disk: byte X is stored at X mod SIZE, so writes beyond SIZE land
  on (and destroy) earlier data, while reading any address right after writing it looks fine.

It prints ``ready`` once mounted and runs until ``fusermount3 -u MOUNTPOINT``.
"""

from __future__ import annotations

import errno
import os
import sys

import pyfuse3

from onefile_fuse import OneFile, serve  # a sibling: this file runs as a script


class LiarFile(OneFile):
    def __init__(self, backing: str, mode: str) -> None:
        self.fd = os.open(backing, os.O_RDWR)
        super().__init__(os.fstat(self.fd).st_size, 0o644, 4096)
        kind, *args = mode.split(":")
        self.kind = kind
        self.args = [int(a) for a in args]

    def _pieces(self, off: int, n: int) -> list[tuple[int, int, int]]:
        """(backing offset, offset in the request, length) of the request's bytes."""
        if self.kind != "wrap":
            return [(off, 0, n)]
        cap = self.args[0]
        out = []
        pos = 0
        while pos < n:
            phys = (off + pos) % cap
            k = min(n - pos, cap - phys)
            out.append((phys, pos, k))
            pos += k
        return out

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


def main() -> None:
    backing, mountpoint, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    serve(LiarFile(backing, mode), mountpoint, {"fsname=liar_fuse"})


if __name__ == "__main__":
    main()
