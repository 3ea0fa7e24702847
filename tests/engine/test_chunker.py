"""The chunker's bulk paths, its change records and reused read buffers, on real factory disks.

An incremental's unit and extent tables must not depend on how unchanged units are found: the one-
comparison path for a run of unchanged units (`ParentUnits.same_rows`) and the row-by-row one must
give exactly the tables of plain per-unit lookups, however the parent's rows arrive in batches. The
incremental's tables laid over the full's (`overlay`) must give exactly the disk as it is now:
every stored byte right, nothing of what was freed since. Chunks keep views of read buffers that are reused,
so every chunk is checked against the source bytes only after the whole disk went through (a buffer
reused while a chunk still saw it would show there), and an unchanged disk must get by on a handful
of buffers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.extents import Extent, merge_extents
from core.engine import pieces
from core.engine.chunker import Chunk, Chunker, MemoryTables, ParentUnits
from core.engine.overlay import Entry, overlay
from core.engine.plan import Region, plan_backup
from core.format.c_image import HOLE_REF, TOMBSTONE, ExtentEntry, UnitEntry
from core.io.reader import FdReader
from tests.conftest import need_root_tools
from tests.dayofuse import day_of_use
from tests.factory import cached_disk_info, copy_disk

pytestmark = pytest.mark.root
ROW = 24  # UnitEntry size


Run = tuple[Chunker, MemoryTables, list[Chunk], list[Region]]


def batches(rows: bytes, n: int) -> list[bytes]:
    """A parent's unit rows as a stream of batches of ``n`` rows (small ones test the sliding window)."""
    return [rows[i:i + n * ROW] for i in range(0, len(rows), n * ROW)]


def chunk_all(path: Path, parent: bytes | None = None, sector_by_sector: bool = False, batch: int = 4096) -> Run:
    """Run the chunker over the whole disk (against a parent's unit rows, if any), keeping every
    chunk unjoined until the caller checks it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = FdReader(fd, os.fstat(fd).st_size, str(path))
        regions = plan_backup(reader, 512, "all", sector_by_sector).regions
        tables = MemoryTables()
        units = ParentUnits(iter(batches(parent, batch))) if parent is not None else None
        chunker = Chunker(reader, regions, 512, tables, parent=units)
        chunks = list(chunker)
    finally:
        os.close(fd)
    return chunker, tables, chunks, regions


def entries(tables: MemoryTables, ref: int) -> list[Entry]:
    return [(e[0], e[1], e[4] if e[4] == HOLE_REF else ref, e[2], e[3])
            for e in ExtentEntry.iter_unpack(tables.extents)]


def state(*layers: MemoryTables) -> list[Entry]:
    """The data extents of the first image's disk state: its tables over its parents' (`overlay`)."""
    stream = iter(entries(layers[-1], len(layers) - 1))
    for ref in range(len(layers) - 2, -1, -1):
        stream = overlay(iter(entries(layers[ref], ref)), stream)
    return [e for e in stream if e[2] != HOLE_REF]


def check_against_disk(path: Path, resolved: list[Entry], zeroed: list[Extent], images: list[list[Chunk]],
                       regions: list[Region]) -> None:
    """Every extent holds the disk's bytes (``images[ref]`` are the chunks of image ``ref``), zero
    extents are zero on disk, used and raw regions are covered and nothing else is (a gap's bytes
    are covered or zero)."""
    data = [{c.number: c.raw() for c in chunks} for chunks in images]
    with open(path, "rb") as f:
        def disk(off: int, n: int) -> bytes:
            f.seek(off)
            return f.read(n)

        for off, n, ref, chunk, coff in resolved:
            assert data[ref][chunk][coff:coff + n] == disk(off, n), f"extent at {off} (image {ref})"
        for off, n in zeroed:
            assert disk(off, n) == bytes(n), f"zero extent at {off}"
        covered = merge_extents([(e[0], e[1]) for e in resolved] + zeroed)
        for r in regions:
            holes = uncovered((r.start, r.length), covered)
            if r.kind == "gap":
                assert all(disk(o, n) == bytes(n) for o, n in holes), f"gap at {r.start}"
            else:
                assert not holes, f"{r.kind} region at {r.start} not covered: {holes[:3]}"
        planned = merge_extents([(r.start, r.length) for r in regions])
        for off, n, *_ in resolved:
            assert not uncovered((off, n), planned), f"extent at {off} lies outside what the disk uses now"


def uncovered(span: Extent, covered: list[Extent]) -> list[Extent]:
    pos, end = span[0], span[0] + span[1]
    out: list[Extent] = []
    for off, n in covered:
        if off + n <= pos or off >= end:
            continue
        if off > pos:
            out.append((pos, off - pos))
        pos = max(pos, off + n)
    if pos < end:
        out.append((pos, end - pos))
    return out


def test_bulk_comparison_gives_the_per_unit_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_root_tools("ntfs-3g")
    info = cached_disk_info("mbr-small")
    disk = copy_disk(info.path, tmp_path / "disk.img")
    full, full_t, full_chunks, regions = chunk_all(disk)
    check_against_disk(disk, state(full_t), full.zeroed, [full_chunks], regions)
    day_of_use(info, disk, seed=5)

    calls = {"same": 0, "rows": 0}
    same_rows, unchanged = ParentUnits.same_rows, ParentUnits.unchanged

    def counting_same_rows(self: ParentUnits, rows: bytes) -> bool:
        result = same_rows(self, rows)
        calls["same"] += result
        return result

    def counting_unchanged(self: ParentUnits, rows: bytes) -> list[bool]:
        calls["rows"] += 1
        return unchanged(self, rows)

    monkeypatch.setattr(ParentUnits, "same_rows", counting_same_rows)
    monkeypatch.setattr(ParentUnits, "unchanged", counting_unchanged)
    inc, inc_t, inc_chunks, regions = chunk_all(disk, full_t.units)
    # Both paths ran: whole unchanged runs and runs with some changed units.
    assert calls["same"] > 0 and calls["rows"] > 0, calls
    assert 0 < inc.reused_bytes and inc_chunks
    check_against_disk(disk, state(inc_t, full_t), inc.zeroed, [inc_chunks, full_chunks], regions)
    # The day of use deleted files: their units are buried (a tombstone and a hole each).
    rows = list(UnitEntry.iter_unpack(inc_t.units))
    assert any(h == TOMBSTONE for _, h in rows) and any(e[4] == HOLE_REF for e in ExtentEntry.iter_unpack(inc_t.extents))
    # What the incremental records grows with what changed: far fewer rows than the full's.
    assert len(inc_t.units) < len(full_t.units) // 4 and len(inc_t.extents) < len(full_t.extents)

    # The reference: no shortcut, one parent lookup per unit, the parent's rows in small batches.
    def per_unit(self: ParentUnits, rows: bytes) -> list[bool]:
        return [self.unit_hash(int.from_bytes(rows[i:i + 8], "little")) == rows[i + 8:i + ROW]
                for i in range(0, len(rows), ROW)]

    monkeypatch.setattr(ParentUnits, "same_rows", lambda self, rows: False)
    monkeypatch.setattr(ParentUnits, "unchanged", per_unit)
    for batch in (4096, 97, 1):
        ref, ref_t, ref_chunks, _ = chunk_all(disk, full_t.units, batch=batch)
        assert inc_t.units == ref_t.units and inc_t.extents == ref_t.extents, batch
        assert (inc.zeroed, inc.unreadable, inc.reused_bytes) == (ref.zeroed, ref.unreadable, ref.reused_bytes)
        assert [c.raw() for c in inc_chunks] == [c.raw() for c in ref_chunks]


def test_unchanged_disk_records_nothing_on_a_few_buffers(tmp_path: Path) -> None:
    info = cached_disk_info("mbr-small")
    full, full_t, full_chunks, regions = chunk_all(info.path)
    inc, inc_t, inc_chunks, _ = chunk_all(info.path, full_t.units, batch=333)
    assert not inc_chunks and inc.reused_bytes == sum(e[1] for e in state(full_t))
    assert inc_t.units == b"" and inc_t.extents == b""
    check_against_disk(info.path, state(inc_t, full_t), inc.zeroed, [inc_chunks, full_chunks], regions)
    n_pieces = sum(1 for _ in pieces.plan_pieces(regions))
    # Buffers come back once their piece is done (nothing pins them: nothing is stored).
    assert inc.piece_reader.allocated <= pieces.READ_AHEAD + 3 < n_pieces // 4, \
        (inc.piece_reader.allocated, n_pieces)


def test_sector_by_sector_zero_blocks(tmp_path: Path) -> None:
    """Raw regions: all-zero blocks become zero extents, the rest is stored exactly."""
    info = cached_disk_info("mbr-small")
    chunker, tables, chunks, regions = chunk_all(info.path, sector_by_sector=True)
    assert {r.kind for r in regions} >= {"raw"}
    assert chunker.zeroed and chunks
    check_against_disk(info.path, state(tables), chunker.zeroed, [chunks], regions)
