"""Putting source-disk bytes onto the target by the layout, and proving afterwards that they landed.

Restore and clone both hand every piece of source data here, in source-disk coordinates. A piece
inside a partition lands at the partition's new place (or, beyond a shrunk partition's new end, in its
spill file); a piece of the partition table is kept aside for the very end; anything else outside the
partitions is written only when the layout is identical to the source's.

Proof that the bytes landed comes in two steps. Where the target takes direct I/O, the aligned part of
each write is read back from the device as soon as it is written (`Disk.pwrite(verify=True)`), while
the other workers keep the CPUs busy. Everything else (the unaligned ends, scratch files, zeroed
ranges, targets without direct I/O) is remembered with an XXH3-128 and re-read by `read_back` after
the last write, caches dropped, together with a 4 KiB probe of every directly verified write.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass, field
from typing import Iterator

import xxhash

from ..disk.device import Disk
from ..errors import TargetWriteError, VerifyAfterWriteError
from ..extents import Extent
from ..format.image_meta import ImageTable
from ..io.direct import DirectUnavailable
from ..partition import gpt, mbr
from ..platform import files
from ..progress import Event, Progress
from .layout import Layout
from .pipeline import IO_WORKERS, Ordered
from .resize import grow_ntfs, shrink_ntfs

_ZEROS = bytes(4 << 20)
# Read-back compares in pieces of at most this size: bounded memory whatever a write's length.
READBACK_PIECE = 4 << 20
# Where the final read-back looks, one packed record per write (35 bytes: memory stays small even for
# millions of writes): offset, length, spill partition (0: the target), kind, XXH3-128 of the bytes.
_ENTRY = struct.Struct("<QQHB16s")
FULL, SAMPLE = 0, 1  # kind: the whole write is re-read / a 4 KiB probe of a write already verified
SAMPLE_SIZE = 4096


@dataclass
class Placer:
    disk: Disk
    layout: Layout | None  # None: no partition table, the image is written as it was
    meta_areas: list[Extent]
    scratch: str
    written: int = 0
    verified: int = 0  # bytes read back and compared right after they were written
    # What the final read-back re-reads: packed _ENTRY records (see there), appended atomically.
    _log: bytearray = field(default_factory=bytearray)
    _spills: dict[int, int] = field(default_factory=dict)  # partition number -> spill fd
    saved: dict[int, bytearray] = field(default_factory=dict)
    # `put` may run in several threads at once (restore writes from its workers): the counters and
    # the lazily opened spill files are guarded; the log is appended to atomically.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.saved = {off: bytearray(n) for off, n in self.meta_areas}

    # --- writing ----------------------------------------------------------------------------------

    def put(self, off: int, data: memoryview | bytes) -> None:
        """Source bytes [off, off+len) with content ``data``. Thread-safe for disjoint ranges."""
        view = memoryview(data)
        for m_off, m_len in self.meta_areas:
            lo, hi = max(off, m_off), min(off + len(view), m_off + m_len)
            if lo < hi:
                self.saved[m_off][lo - m_off:hi - m_off] = view[lo - off:hi - off]
        for t_off, src_lo, n, spill in self._targets(off, len(view)):
            self._write(spill, t_off, view[src_lo - off:src_lo - off + n])

    def zero(self, off: int, n: int) -> None:
        for t_off, _src, k, spill in self._targets(off, n):
            if not spill and self.disk.zero_range(t_off, k):
                self._note(0, t_off, k, FULL, _zeros_digest(k))
                with self._lock:
                    self.written += k
                continue
            pos = 0
            while pos < k:
                step = min(len(_ZEROS), k - pos)
                self._write(spill, t_off + pos, memoryview(_ZEROS)[:step])
                pos += step

    def _targets(self, off: int, n: int) -> list[tuple[int, int, int, int]]:
        """(target offset, source offset, length, spill partition or 0) pieces of source [off, off+n)."""
        out: list[tuple[int, int, int, int]] = []
        end = off + n
        if self.layout is None or self.layout.identical:
            pos = off
            for m_off, m_len in sorted(self.meta_areas):
                if m_off + m_len <= pos or m_off >= end:
                    continue
                if m_off > pos:
                    out.append((pos, pos, m_off - pos, 0))
                pos = max(pos, m_off + m_len)
            if pos < end:
                out.append((pos, pos, end - pos, 0))
            return [(t, s, min(k, self.disk.size - t), 0) for t, s, k, _ in out if t < self.disk.size]
        for m in self.layout.moves:
            lo, hi = max(off, m.old_start), min(end, m.old_start + m.old_size)
            if lo >= hi:
                continue
            rel_lo, rel_hi = lo - m.old_start, hi - m.old_start
            if rel_lo < m.new_size:
                k = min(rel_hi, m.new_size) - rel_lo
                out.append((m.new_start + rel_lo, lo, k, 0))
            if rel_hi > m.new_size:
                s = max(rel_lo, m.new_size)
                out.append((s - m.new_size, m.old_start + s, rel_hi - s, m.number))
        return out

    def _spill_fd(self, number: int) -> int:
        with self._lock:
            return self._open_spill(number)

    def _open_spill(self, number: int) -> int:
        fd = self._spills.get(number)
        if fd is None:
            path = self.spill_path(number)
            try:
                fd = files.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | files.CLOEXEC, 0o600)
            except OSError as e:
                raise TargetWriteError(target=self.disk.path,
                                       detail=f"cannot create scratch file {path}: {e.strerror}") from None
            self._spills[number] = fd
        return fd

    def spill_path(self, number: int) -> str:
        return os.path.join(self.scratch, f".rescue-spill-{os.getpid()}-p{number}")

    def _write(self, spill: int, t_off: int, data: memoryview) -> None:
        if spill:
            fd = self._spill_fd(spill)
            try:
                files.pwrite(fd, data, t_off)
            except OSError as e:
                raise TargetWriteError(target=self.disk.path, detail=f"scratch file: {e.strerror}") from None
            self._note(spill, t_off, len(data), FULL, xxhash.xxh3_128_digest(data))
        else:
            lo, hi = self.disk.pwrite(t_off, data, verify=True)
            if hi <= lo:  # written through the page cache: the final pass re-reads all of it
                self._note(0, t_off, len(data), FULL, xxhash.xxh3_128_digest(data))
            else:
                # The aligned middle went to the device directly and was read back at once. The
                # final pass re-reads the unaligned ends, and one 4 KiB probe of the middle: a disk
                # that lies about its size (addresses wrap) overwrites earlier data with later
                # writes, which only a look after the last write can see.
                for a, b in ((t_off, lo), (hi, t_off + len(data))):
                    if b > a:
                        self._note(0, a, b - a, FULL, xxhash.xxh3_128_digest(data[a - t_off:b - t_off]))
                probe = data[lo - t_off:lo - t_off + SAMPLE_SIZE]
                self._note(0, lo, len(probe), SAMPLE, xxhash.xxh3_128_digest(probe))
                with self._lock:
                    self.verified += hi - lo
        with self._lock:
            self.written += len(data)

    def _note(self, spill: int, off: int, n: int, kind: int, digest: bytes) -> None:
        self._log.extend(_ENTRY.pack(off, n, spill, kind, digest))  # one C call: atomic under the GIL

    # --- proving ----------------------------------------------------------------------------------

    def read_back(self, progress: Progress) -> int:
        """The final pass: re-read from the medium what `_write` could not verify at once (buffered
        writes, scratch files, zeroed ranges) and a probe of everything else; raise
        `VerifyAfterWriteError` on a difference. Returns every byte verified, now or at writing.

        Caches are dropped first, so buffered bytes come from the disk, not from memory; direct
        reads never see the cache. The reads and hashes run in the worker threads."""
        self.disk.sync(drop_cache=True)
        for fd in self._spills.values():
            os.fsync(fd)
        total = self.verified + sum(n for _, n, _, kind, _ in self._entries() if kind == FULL)
        done = self.verified
        for entry, ok in Ordered(self._check, self._entries(), depth=IO_WORKERS * 2, workers=IO_WORKERS):
            progress.check()
            off, n, spill, kind, _ = entry
            if not ok:
                where = f"scratch file of partition {spill}" if spill else "the target"
                what = "after later writes (does the disk hold what its size claims?)" if kind == SAMPLE else ""
                raise VerifyAfterWriteError(target=self.disk.path,
                                            detail=f"{n} bytes at byte {off} of {where} read back differently"
                                                   f"{' ' + what if what else ''}")
            if kind == FULL:
                done += n
            progress.report(Event("read-back", done, total))
        return done

    def _entries(self) -> Iterator[tuple[int, int, int, int, bytes]]:
        for i in range(0, len(self._log), _ENTRY.size):
            yield _ENTRY.unpack_from(self._log, i)

    def _check(self, entry: tuple[int, int, int, int, bytes]) -> tuple[tuple[int, int, int, int, bytes], bool]:
        off, n, spill, _, digest = entry
        if spill:
            h = xxhash.xxh3_128()
            pos = 0
            while pos < n:
                k = min(READBACK_PIECE, n - pos)
                data = files.pread(self._spills[spill], k, off + pos)
                if len(data) != k:
                    return entry, False
                h.update(data)
                pos += k
            return entry, h.digest() == digest
        for _ in range(2):  # a second time only when direct reads were refused part-way
            h = xxhash.xxh3_128()
            try:
                got = self.disk.feed_from_medium(off, n, h.update)
            except DirectUnavailable:
                continue
            return entry, got == n and h.digest() == digest
        return entry, False

    # --- resizing and the table -------------------------------------------------------------------

    def resize(self, progress: Progress) -> list[str]:
        """Grow or shrink the NTFS partitions the layout resizes; returns what was done."""
        report: list[str] = []
        if self.layout is None:
            return report
        self.disk.sync()
        for m in self.layout.moves:
            if m.action == "copy" or m.fs != "ntfs":
                continue
            progress.report(Event("resize", message=f"{m.action} NTFS of partition {m.number} "
                                                    f"from {m.old_size} to {m.new_size} bytes"))
            if m.action == "grow":
                grow_ntfs(self.disk.real_path, m.new_start, m.new_size)
            else:
                fd = self._spill_fd(m.number)
                os.fsync(fd)
                shrink_ntfs(self.disk.real_path, m.new_start, m.old_size, m.new_size, self.spill_path(m.number))
            done = "grown" if m.action == "grow" else "shrunk"
            report.append(f"partition {m.number}: NTFS {done} from {m.old_size} to {m.new_size} bytes")
        return report

    def table_writes(self, table: ImageTable) -> list[tuple[int, bytes]]:
        """The target's partition table: the source's own bytes when the layout is identical."""
        ss = table.sector_size
        roles = {a.offset: a.role for a in table.areas}
        sector0 = next(bytes(b) for off, b in self.saved.items() if roles[off] == "mbr")
        all_kept = all(p.included for p in table.partitions)
        keep = {p.number for p in table.included}
        size = self.disk.size
        assert self.layout is not None  # only called for images with a table
        if self.layout.identical or not self.layout.moves:
            if table.scheme == "mbr":
                if all_kept:
                    return [(off, bytes(b)) for off, b in self.saved.items()]
                ebrs = {off: bytes(b) for off, b in self.saved.items() if roles[off] == "ebr"}
                return mbr.rewrite_for_disk(sector0, ebrs, ss, size, keep)
            if all_kept and size == table.disk_size:
                return [(off, bytes(b)) for off, b in self.saved.items()]
            primary = next(bytes(b) for off, b in self.saved.items() if roles[off] == "gpt-primary")
            writes = gpt.rewrite_for_disk(primary[:ss], primary[ss:], ss, size, None if all_kept else keep)
            return writes + [(0, gpt.build_protective_mbr(size, ss, sector0[:440], _sig(sector0)))]
        parts = self.layout.partitions()
        if table.scheme == "mbr":
            return mbr.build(parts, size, ss, table.disk_id, boot_code=sector0[:440])
        primary = next(bytes(b) for off, b in self.saved.items() if roles[off] == "gpt-primary")
        entries = int.from_bytes(primary[0x50:0x54], "little") or 128
        return gpt.build(parts, size, ss, table.disk_id, num_entries=entries, boot_code=sector0[:440])

    def close(self) -> None:
        for number, fd in self._spills.items():
            os.close(fd)
            try:
                os.unlink(self.spill_path(number))
            except OSError:
                pass
        self._spills = {}


def _zeros_digest(n: int) -> bytes:
    """XXH3-128 of n zero bytes, computed in pieces (no n-byte allocation)."""
    h = xxhash.xxh3_128()
    while n > 0:
        k = min(n, len(_ZEROS))
        h.update(memoryview(_ZEROS)[:k])
        n -= k
    return h.digest()


def _sig(sector0: bytes) -> int:
    return int.from_bytes(sector0[440:444], "little")
