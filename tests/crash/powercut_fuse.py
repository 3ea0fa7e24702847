"""A power-cut filesystem for R-12: one flat folder that keeps apart what was made durable.

``python3 powercut_fuse.py INPUT MOUNTPOINT WORK OUTPUT STATS CUT SURVIVE`` mounts MOUNTPOINT holding
INPUT's files (taken as durable: a folder after a clean power-off). Every mutating operation (create,
write, truncate, fsync/fdatasync, directory fsync, rename, unlink) is counted. Two states are kept:

- the *current* one, what the running program sees (WORK/cur, one file per inode, and the names);
- the *durable* one (WORK/dur and its names): a file's writes and truncations become durable at
  its fsync/fdatasync; a name's create, rename or unlink becomes durable at an fsync of the folder.

When the count would pass CUT (``-1``: never) the power goes: the operation and every later one,
reads included, fail with EIO, and of what was still pending SURVIVE says what survives, applied in
its order: ``random:SEED`` a random subset of each file's writes and of the name operations (a cache
that wrote back some blocks), ``latest`` only the last write of each file and the last name operation
(the newest blocks written first: a partition table written after its data, say, without the data),
``none`` nothing. The durable state is then written to
OUTPUT (hard links, mtimes an hour back: the machine comes back later), ``cut`` is printed, and the
filesystem stays dead until unmounted. Without a cut OUTPUT gets the current state at unmount.
STATS gets a JSON line: operations counted, whether the cut came, what was dropped.

Files are opened ``direct_io``, so each write() reaches us with its own offset and length. INPUT's
files are hard-linked in and copied on their first change, so INPUT is never modified.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from typing import Any

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE
Pending = tuple[str, int, bytes]  # ("w", offset, data) or ("t", size, b"")


class PowerCut(pyfuse3.Operations):  # type: ignore[misc]
    def __init__(self, input_dir: str, work: str, output: str, stats: str, cut: int, survive: str) -> None:
        super().__init__()
        self.cur, self.dur = os.path.join(work, "cur"), os.path.join(work, "dur")
        os.makedirs(self.cur)
        os.makedirs(self.dur)
        self.output, self.stats, self.cut, self.survive = output, stats, cut, survive
        self.ops = 0
        self.dead = False
        self.next_ino = ROOT + 1
        self.names: dict[bytes, int] = {}  # current
        self.dur_names: dict[bytes, int] = {}
        self.name_ops: list[tuple[bytes, bytes, int]] = []  # (old or b"", new or b"", inode), pending
        self.pending: dict[int, list[Pending]] = {}
        self.shared: set[str] = set()  # paths still hard links to INPUT: copy before changing
        self.fds: dict[int, int] = {}
        self.dropped = {"writes": 0, "names": 0, "kept_writes": 0, "kept_names": 0}
        for name in sorted(os.listdir(input_dir)):
            ino = self._new_ino()
            for side in (self.cur, self.dur):
                p = os.path.join(side, str(ino))
                os.link(os.path.join(input_dir, name), p)
                self.shared.add(p)
            self.names[os.fsencode(name)] = self.dur_names[os.fsencode(name)] = ino

    def _new_ino(self) -> int:
        ino = self.next_ino
        self.next_ino += 1
        self.pending[ino] = []
        return ino

    def _own(self, path: str) -> None:
        """Break a hard link to INPUT before the first change (sparse copy: disk images are big)."""
        if path in self.shared:
            subprocess.run(["cp", "--sparse=always", path, path + ".new"], check=True)
            os.replace(path + ".new", path)
            self.shared.discard(path)

    def _fd(self, ino: int) -> int:
        if ino not in self.fds:
            path = os.path.join(self.cur, str(ino))
            self._own(path)
            self.fds[ino] = os.open(path, os.O_RDWR)
        return self.fds[ino]

    def _op(self) -> None:
        """Count one mutating operation; at the cut, the power goes."""
        if self.dead:
            raise pyfuse3.FUSEError(errno.EIO)
        if self.cut >= 0 and self.ops >= self.cut:
            self._power_cut()
            raise pyfuse3.FUSEError(errno.EIO)
        self.ops += 1

    def _alive(self) -> None:
        if self.dead:
            raise pyfuse3.FUSEError(errno.EIO)

    # --- durability ---------------------------------------------------------------------------

    def _apply(self, ino: int, ops: list[Pending]) -> None:
        path = os.path.join(self.dur, str(ino))
        self._own(path)
        fd = os.open(path, os.O_RDWR)
        try:
            for kind, n, data in ops:
                if kind == "w":
                    os.pwrite(fd, data, n)
                else:
                    os.ftruncate(fd, n)
        finally:
            os.close(fd)

    def _apply_names(self, ops: list[tuple[bytes, bytes, int]]) -> None:
        for old, new, ino in ops:
            if old and self.dur_names.get(old) == ino:
                del self.dur_names[old]
            if new:
                self.dur_names[new] = ino

    def _power_cut(self) -> None:
        self.dead = True
        mode, _, seed = self.survive.partition(":")
        rnd = random.Random(seed)

        def keep(ops: list[Any]) -> list[Any]:
            if mode == "random":
                return [p for p in ops if rnd.random() < 0.5]
            return ops[-1:] if mode == "latest" else []

        for ino, ops in self.pending.items():
            kept = keep(ops)
            self.dropped["writes"] += len(ops) - len(kept)
            self.dropped["kept_writes"] += len(kept)
            if kept:
                self._apply(ino, kept)
        kept_names = keep(self.name_ops)
        self.dropped["names"] += len(self.name_ops) - len(kept_names)
        self.dropped["kept_names"] += len(kept_names)
        self._apply_names(kept_names)
        self._write_out(self.dur, self.dur_names, time.time() - 3600)
        print("cut", flush=True)

    def _write_out(self, side: str, names: dict[bytes, int], mtime: float | None) -> None:
        os.makedirs(self.output)
        for name, ino in names.items():
            dst = os.path.join(self.output, os.fsdecode(name))
            os.link(os.path.join(side, str(ino)), dst)
            if mtime is not None:
                os.utime(dst, (mtime, mtime))

    def finish(self) -> None:
        if not self.dead:
            self._write_out(self.cur, self.names, None)
        with open(self.stats, "w") as f:
            json.dump({"ops": self.ops, "cut": self.dead, **self.dropped}, f)

    # --- the filesystem -------------------------------------------------------------------------

    def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        if ino == ROOT:
            a.st_mode, a.st_size, a.st_nlink = stat.S_IFDIR | 0o755, 0, 2
        else:
            st = os.stat(os.path.join(self.cur, str(ino)))
            a.st_mode, a.st_size, a.st_nlink = stat.S_IFREG | 0o644, st.st_size, 1
            a.st_mtime_ns = a.st_ctime_ns = st.st_mtime_ns
            a.st_blocks = st.st_blocks
        a.st_uid = a.st_gid = 0
        a.st_blksize = 4096
        # Sizes change under writes: no caching by the kernel.
        a.attr_timeout = a.entry_timeout = 0
        return a

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._alive()
        return self._attr(inode)

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._alive()
        if parent_inode != ROOT or name not in self.names:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(self.names[name])

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> pyfuse3.EntryAttributes:
        self._alive()
        if fields.update_size:
            self._op()
            os.ftruncate(self._fd(inode), attr.st_size)
            self.pending[inode].append(("t", attr.st_size, b""))
        if fields.update_mtime and inode != ROOT:
            self._fd(inode)  # own the file before touching its times
            os.utime(os.path.join(self.cur, str(inode)), ns=(attr.st_atime_ns, attr.st_mtime_ns))
        return self._attr(inode)

    async def opendir(self, inode: int, ctx: Any) -> int:
        self._alive()
        if inode != ROOT:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        self._alive()
        entries = sorted(self.names.items())
        for i, (name, ino) in enumerate(entries[start_id:], start_id):
            if not pyfuse3.readdir_reply(token, name, self._attr(ino), i + 1):
                break

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        self._op()
        self._apply_names(self.name_ops)
        self.name_ops = []

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        self._alive()
        if flags & os.O_TRUNC:
            self._op()
            os.ftruncate(self._fd(inode), 0)
            self.pending[inode].append(("t", 0, b""))
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._alive()
        if name in self.names:
            if flags & os.O_EXCL:
                raise pyfuse3.FUSEError(errno.EEXIST)
            return await self.open(self.names[name], flags, ctx), self._attr(self.names[name])
        self._op()
        ino = self._new_ino()
        for side in (self.cur, self.dur):
            open(os.path.join(side, str(ino)), "wb").close()
        self.names[name] = ino
        self.name_ops.append((b"", name, ino))
        return pyfuse3.FileInfo(fh=ino, direct_io=True), self._attr(ino)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        self._alive()
        return os.pread(self._fd(fh), size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self._op()
        n = os.pwrite(self._fd(fh), buf, off)
        self.pending[fh].append(("w", off, bytes(buf[:n])))
        return n

    async def fsync(self, fh: int, datasync: bool) -> None:
        self._op()
        self._apply(fh, self.pending[fh])
        self.pending[fh] = []

    async def flush(self, fh: int) -> None:
        return None  # close() makes nothing durable

    async def release(self, fh: int) -> None:
        return None

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._alive()
        if name not in self.names:
            raise pyfuse3.FUSEError(errno.ENOENT)
        self._op()
        self.name_ops.append((name, b"", self.names.pop(name)))

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: Any) -> None:
        self._alive()
        if name_old not in self.names:
            raise pyfuse3.FUSEError(errno.ENOENT)
        self._op()
        ino = self.names.pop(name_old)
        self.names[name_new] = ino
        self.name_ops.append((name_old, name_new, ino))

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        self._alive()
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 1 << 22  # 16 GiB: room is not what is tested here
        s.f_files = s.f_ffree = s.f_favail = 1 << 20
        s.f_namemax = 255
        return s


def main() -> None:
    input_dir, mountpoint, work, output, stats, cut, survive = sys.argv[1:8]
    if survive.partition(":")[0] not in ("random", "latest", "none"):
        raise SystemExit(f"SURVIVE is random:SEED, latest or none, not {survive!r}")
    ops = PowerCut(input_dir, work, output, stats, int(cut), survive)
    pyfuse3.init(ops, mountpoint, set(pyfuse3.default_options) | {"fsname=powercut_fuse"})
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
        ops.finish()
        shutil.rmtree(os.path.join(work, "cur"), ignore_errors=True)


if __name__ == "__main__":
    main()
