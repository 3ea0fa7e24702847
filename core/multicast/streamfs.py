"""A read-only FUSE folder holding an image whose volume data arrives as a stream on stdin.

The folder holds the chain's manifests (copies on local storage, fetched and pinned by the client) and
its volume files. A volume's header and trailer are served from the session's description; the bytes
between come from the stream (the volume files one after the other, `session.Layout`), kept in a window:
bytes more than ``keep`` behind the furthest byte asked for are dropped, and the stream is not read
more than ``ahead`` beyond it, so the sender waits for the slowest client instead of a client running
out of memory. The restore reads through it unchanged and checks every chunk as always; here, a read
that the window no longer holds, a stream that ends early or stalls, or a stream whose own copy of a
volume header or trailer differs from the description (a receiver out of step) fails that read and
every later one, and the reason is written to the status file for the client to report.

Run as ``python3 -m core.multicast.streamfs MOUNTDIR SPEC.json`` with the stream on stdin; it serves in
the foreground until unmounted, then reads the rest of the stream (so udp-receiver ends cleanly).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from typing import Any

import pyfuse3
import trio

from ..platform import files

_READ = 1 << 20


class _Stream:
    """The window over the stream and why it failed, if it did."""

    def __init__(self, checks: list[tuple[int, bytes, str]], keep: int, ahead: int, stall: float,
                 first: float, status: str) -> None:
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.max_req = 0  # the furthest stream byte any read has asked for
        self.eof = False
        self.failure = ""
        self.checks = sorted(checks)  # (stream offset, expected bytes, what): headers and trailers
        self.keep, self.ahead, self.stall, self.first, self.status = keep, ahead, stall, first, status
        self.last = 0.0  # when the last byte arrived (when serving began, until one has)
        self.changed = trio.Event()

    @property
    def head(self) -> int:
        return self.base + len(self.buf)

    def fail(self, why: str) -> None:
        if not self.failure:
            self.failure = why
            with open(self.status, "w") as f:
                f.write(why)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def _drop(self) -> None:
        cut = min(self.head, self.max_req - self.keep) - self.base
        # Dropped in batches of a window: each drop moves what is kept to the buffer's start, so the
        # stream is copied about twice more in all, not once per megabyte that arrives.
        if cut >= self.keep:
            del self.buf[:cut]
            self.base += cut

    async def pump(self, source: trio.lowlevel.FdStream) -> None:
        self.last = trio.current_time()
        while not self.failure:
            while self.head >= self.max_req + self.ahead and not self.failure:
                await self.changed.wait()
            if self.failure:
                return
            data = await source.receive_some(_READ)
            if not data:
                self.eof = True
                self._wake()
                return
            self.buf += data
            self.last = trio.current_time()
            self._check()
            self._drop()
            self._wake()

    def _check(self) -> None:
        # The stream's own copies of each volume's header and trailer are compared as they pass: a
        # receiver that skipped or repeated bytes is caught at the next volume boundary at the latest
        # (the chunks between are caught by their authentication anyway).
        while self.checks and self.checks[0][0] + len(self.checks[0][1]) <= self.head:
            at, want, what = self.checks.pop(0)
            got = bytes(self.buf[at - self.base:at - self.base + len(want)]) if at >= self.base else b""
            if got != want:
                self.fail(f"the stream is out of step: its {what} at stream byte {at} is not the volume's")

    async def read(self, start: int, length: int) -> bytes:
        end = start + length
        self.max_req = max(self.max_req, end)
        self._wake()
        while self.head < end and not self.eof and not self.failure:
            # Silence counts from the last byte that arrived (or the start: the first byte may take
            # as long as the server waits for the other PCs to join).
            limit = self.stall if self.head else self.first
            left = self.last + limit - trio.current_time()
            if left <= 0:
                self.fail(f"the stream stalled at byte {self.head}: nothing arrived for {limit:g} s")
                break
            with trio.move_on_after(left):
                await self.changed.wait()
        if not self.failure and start < self.base:
            self.fail(f"stream byte {start} was read after the window had moved past it (at {self.base})")
        if not self.failure and self.head < end:
            self.fail(f"the stream ended at byte {self.head}, before byte {end} that the restore needs")
        if self.failure:
            raise pyfuse3.FUSEError(errno.EIO)
        return bytes(self.buf[start - self.base:end - self.base])


class StreamFS(pyfuse3.Operations):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        # inode -> (name, size, kind, detail): kind "manifest" (detail: local path) or "volume"
        # (detail: (stream start, header, trailer)).
        self.files: dict[int, tuple[str, int, str, Any]] = {}
        checks: list[tuple[int, bytes, str]] = []
        ino = pyfuse3.ROOT_INODE + 1
        for m in spec["manifests"]:
            self.files[ino] = (m["name"], os.path.getsize(m["path"]), "manifest", m["path"])
            ino += 1
        pos = 0
        for v in spec["volumes"]:
            header, trailer = bytes.fromhex(v["header"]), bytes.fromhex(v["trailer"])
            self.files[ino] = (v["name"], v["length"], "volume", (pos, header, trailer))
            checks += [(pos, header, f"header of {v['name']}"),
                       (pos + v["length"] - len(trailer), trailer, f"trailer of {v['name']}")]
            pos += v["length"]
            ino += 1
        self.by_name = {f[0].encode(): i for i, f in self.files.items()}
        self.fds: dict[int, int] = {}
        self.stream = _Stream(checks, spec["keep"], spec["ahead"], spec["stall"], spec["first"],
                              spec["status"])

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o555
            a.st_nlink = 2
        elif inode in self.files:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_nlink = 1
            a.st_size = self.files[inode][1]
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.attr_timeout = a.entry_timeout = 3600
        return a

    async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if parent != pyfuse3.ROOT_INODE or name not in self.by_name:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(self.by_name[name])

    async def opendir(self, inode: int, ctx: Any) -> int:
        if inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        for ino in sorted(self.files):
            if ino > start_id and not pyfuse3.readdir_reply(token, self.files[ino][0].encode(),
                                                            await self.getattr(ino), ino):
                return

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode not in self.files:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise pyfuse3.FUSEError(errno.EROFS)
        _, _, kind, detail = self.files[inode]
        if kind == "manifest" and inode not in self.fds:
            self.fds[inode] = files.open_fd(detail, os.O_RDONLY | files.CLOEXEC)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        _, length, kind, detail = self.files[fh]
        end = min(off + size, length)
        if off >= end:
            return b""
        if kind == "manifest":
            return files.pread(self.fds[fh], end - off, off)
        start, header, trailer = detail
        out = bytearray()
        data_lo, data_hi = len(header), length - len(trailer)
        if off < data_lo:
            out += header[off:min(end, data_lo)]
        lo, hi = max(off, data_lo), min(end, data_hi)
        if lo < hi:
            out += await self.stream.read(start + lo, hi - lo)
        if end > data_hi:
            out += trailer[max(off, data_hi) - data_hi:end - data_hi]
        return bytes(out)


async def _serve(fs: StreamFS) -> None:
    source = trio.lowlevel.FdStream(os.dup(0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fs.stream.pump, source)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    mountdir, spec_path = argv
    with open(spec_path) as f:
        fs = StreamFS(json.load(f))
    options = set(pyfuse3.default_options)
    options.add("fsname=rescue-session")
    options.add("ro")
    options.discard("default_permissions")
    pyfuse3.init(fs, mountdir, options)
    try:
        trio.run(_serve, fs)
    finally:
        pyfuse3.close(unmount=True)
    os.set_blocking(0, True)  # trio made the shared pipe non-blocking
    # Unmounted: take the rest of the stream, so that the sender sees this receiver finish rather than
    # vanish (udpcast would otherwise wait for it before dropping it, holding up the other clients).
    while not fs.stream.failure:
        try:
            if not os.read(0, _READ):
                break
        except OSError:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
