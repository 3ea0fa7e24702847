"""Putting source-disk bytes onto the target by the layout, and proving afterwards that they landed.

Restore and clone both hand every piece of source data here, in source-disk coordinates. A piece
inside a partition lands at the partition's new place (or, beyond a shrunk partition's new end, in its
spill file); a piece of the partition table is kept aside for the very end; anything else outside the
partitions is written only when the layout is identical to the source's. Each write is remembered
with an XXH3-128 of the bytes written, and `read_back` re-reads all of them from the medium (caches
dropped) before the target is declared good.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ..disk import gpt, mbr
from ..disk.device import Disk
from ..disk.model import Extent
from ..errors import TargetWriteError, VerifyAfterWriteError
from ..progress import Event, Progress
from .layout import Layout, PartMove
from .pipeline import Ordered
from .resize import grow_ntfs, shrink_ntfs

_ZEROS = bytes(4 << 20)
# Read-back compares in pieces of at most this size: bounded memory whatever a write's length.
READBACK_PIECE = 4 << 20


@dataclass
class Placer:
    disk: Disk
    layout: Layout | None  # None: no partition table, the image is written as it was
    meta_areas: list[Extent]
    scratch: str
    written: int = 0
    _log: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # (where, offset, length, hash)
    _spills: dict[int, int] = field(default_factory=dict)  # partition number -> spill fd
    saved: dict[int, bytearray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.saved = {off: bytearray(n) for off, n in self.meta_areas}

    # --- writing ----------------------------------------------------------------------------------

    def put(self, off: int, data: memoryview | bytes) -> None:
        """Source bytes [off, off+len) with content ``data``."""
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
                self._log.append((0, t_off, k, _zeros_digest(k)))
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
        fd = self._spills.get(number)
        if fd is None:
            path = self.spill_path(number)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
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
                os.pwrite(fd, data, t_off)
            except OSError as e:
                raise TargetWriteError(target=self.disk.path, detail=f"scratch file: {e.strerror}") from None
        else:
            self.disk.pwrite(t_off, data)
        self._log.append((spill, t_off, len(data), xxhash.xxh3_128_digest(data)))
        self.written += len(data)

    # --- proving ----------------------------------------------------------------------------------

    def read_back(self, progress: Progress) -> int:
        """Re-read every write from the medium and compare; raise `VerifyAfterWriteError` on a mismatch.

        Caches are dropped first, so the bytes come from the disk, not from memory. The reads and
        hashes run in the worker threads, a few writes at a time."""
        self.disk.sync(drop_cache=True)
        for fd in self._spills.values():
            os.fsync(fd)
        total = sum(n for _, _, n, _ in self._log)
        done = 0
        for entry, ok in Ordered(self._check, self._log):
            progress.check()
            spill, off, n, _ = entry
            if not ok:
                where = f"scratch file of partition {spill}" if spill else "the target"
                raise VerifyAfterWriteError(target=self.disk.path,
                                            detail=f"{n} bytes at byte {off} of {where} read back differently")
            done += n
            progress.report(Event("read-back", done, total))
        return done

    def _check(self, entry: tuple[int, int, int, bytes]) -> tuple[tuple[int, int, int, bytes], bool]:
        spill, off, n, digest = entry
        h = xxhash.xxh3_128()
        pos = 0
        while pos < n:
            k = min(READBACK_PIECE, n - pos)
            data = os.pread(self._spills[spill], k, off + pos) if spill else self.disk.pread(off + pos, k)
            if len(data) != k:
                return entry, False
            h.update(data)
            pos += k
        return entry, h.digest() == digest

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

    def table_writes(self, table: dict[str, Any]) -> list[tuple[int, bytes]]:
        """The target's partition table: the source's own bytes when the layout is identical."""
        ss = int(table["sector_size"])
        roles = {m["offset"]: m["role"] for m in table["meta"]}
        sector0 = next(bytes(b) for off, b in self.saved.items() if roles[off] == "mbr")
        all_kept = all(p["included"] for p in table["partitions"])
        keep = {p["number"] for p in table["partitions"] if p["included"]}
        size = self.disk.size
        assert self.layout is not None  # only called for images with a table
        if self.layout.identical or not self.layout.moves:
            if table["scheme"] == "mbr":
                if all_kept:
                    return [(off, bytes(b)) for off, b in self.saved.items()]
                ebrs = {off: bytes(b) for off, b in self.saved.items() if roles[off] == "ebr"}
                return mbr.rewrite_for_disk(sector0, ebrs, ss, size, keep)
            if all_kept and size == table["disk_size"]:
                return [(off, bytes(b)) for off, b in self.saved.items()]
            primary = next(bytes(b) for off, b in self.saved.items() if roles[off] == "gpt-primary")
            writes = gpt.rewrite_for_disk(primary[:ss], primary[ss:], ss, size, None if all_kept else keep)
            return writes + [(0, gpt.build_protective_mbr(size, ss, sector0[:440], _sig(sector0)))]
        parts = self.layout.partitions()
        if table["scheme"] == "mbr":
            return mbr.build(parts, size, ss, table["disk_id"], boot_code=sector0[:440])
        primary = next(bytes(b) for off, b in self.saved.items() if roles[off] == "gpt-primary")
        entries = int.from_bytes(primary[0x50:0x54], "little") or 128
        return gpt.build(parts, size, ss, table["disk_id"], num_entries=entries, boot_code=sector0[:440])

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


def hidden_sectors_writes(disk: Disk, moves: list[PartMove], ss: int) -> list[tuple[int, bytes]]:
    """NTFS/FAT boot sectors record their partition's start ("hidden sectors", BPB offset 0x1C); a
    moved partition's boot sector (and NTFS's backup in the volume's last sector) must say the new one,
    or the volume boot code loads the wrong sectors."""
    out: list[tuple[int, bytes]] = []
    for m in moves:
        # An unmoved partition is restored bit for bit; `rescue fix-boot` repairs a wrong field there.
        if m.fs not in ("ntfs", "fat12", "fat16", "fat32") or m.new_start == m.old_start:
            continue
        sectors = [m.new_start]
        boot = disk.pread(m.new_start, ss)
        if len(boot) != ss or boot[510:512] != b"\x55\xaa":
            continue
        if m.fs == "ntfs":
            # The backup follows the volume's last sector (Windows) or ends the partition (ntfsresize).
            total = int.from_bytes(boot[0x28:0x30], "little")
            for backup in dict.fromkeys((m.new_start + total * ss, m.new_start + m.new_size - ss)):
                if m.new_start < backup < m.new_start + m.new_size:
                    sectors.append(backup)
        elif m.fs == "fat32":
            bk = int.from_bytes(boot[0x32:0x34], "little")
            if 0 < bk < 32:
                sectors.append(m.new_start + bk * ss)
        value = (m.new_start // ss).to_bytes(4, "little")
        for s in sectors:
            sec = bytearray(disk.pread(s, ss))
            if len(sec) == ss and sec[510:512] == b"\x55\xaa" and sec[3:11] == boot[3:11] \
                    and sec[0x1C:0x20] != value:
                sec[0x1C:0x20] = value
                out.append((s, bytes(sec)))
    return out
