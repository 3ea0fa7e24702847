"""The chunker's bulk paths and reused read buffers, on real factory disks.

An incremental's unit and extent tables must not depend on how unchanged units are found: the one-
comparison path for a run of unchanged units (`ParentIndex.same_rows`) and the row-by-row one must
give exactly the tables of plain per-unit lookups. Chunks keep views of read buffers that are reused,
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
from core.engine.chunker import Chunk, Chunker, ParentIndex
from core.engine.plan import Region, plan_backup
from core.format.c_image import ExtentEntry
from core.io.reader import FdReader
from tests.conftest import need_root_tools
from tests.dayofuse import day_of_use
from tests.factory import cached_disk_info, copy_disk

pytestmark = pytest.mark.root
ROW = 24  # UnitEntry size


def chunk_all(path: Path, parent: ParentIndex | None = None,
              sector_by_sector: bool = False) -> tuple[Chunker, list[Chunk], list[Region]]:
    """Run the chunker over the whole disk, keeping every chunk unjoined until the caller checks it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = FdReader(fd, os.fstat(fd).st_size, str(path))
        regions = plan_backup(reader, 512, "all", sector_by_sector).regions
        chunker = Chunker(reader, regions, 512, parent=parent)
        chunks = list(chunker)
    finally:
        os.close(fd)
    return chunker, chunks, regions


def extents(chunker: Chunker) -> list[tuple[int, int, int, int, int]]:
    return [(e[0], e[1], e[2], e[3], e[4]) for e in ExtentEntry.iter_unpack(bytes(chunker.extents))]


def check_against_disk(path: Path, chunker: Chunker, images: list[list[Chunk]],
                       regions: list[Region]) -> None:
    """Every extent holds the disk's bytes (``images[ref]`` are the chunks of image ``ref``), zero
    extents are zero on disk, used and raw regions are covered, and a gap's uncovered bytes are zero."""
    data = [{c.number: c.raw() for c in chunks} for chunks in images]
    with open(path, "rb") as f:
        def disk(off: int, n: int) -> bytes:
            f.seek(off)
            return f.read(n)

        for off, n, chunk, coff, ref in extents(chunker):
            assert data[ref][chunk][coff:coff + n] == disk(off, n), f"extent at {off} (image {ref})"
        for off, n in chunker.zeroed:
            assert disk(off, n) == bytes(n), f"zero extent at {off}"
        covered = merge_extents([(e[0], e[1]) for e in extents(chunker)] + chunker.zeroed)
        for r in regions:
            holes = uncovered((r.start, r.length), covered)
            if r.kind == "gap":
                assert all(disk(o, n) == bytes(n) for o, n in holes), f"gap at {r.start}"
            else:
                assert not holes, f"{r.kind} region at {r.start} not covered: {holes[:3]}"


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
    full, full_chunks, regions = chunk_all(disk)
    check_against_disk(disk, full, [full_chunks], regions)
    day_of_use(info, disk, seed=5)

    def parent() -> ParentIndex:
        return ParentIndex(bytes(full.units), bytes(full.extents))

    calls = {"same": 0, "rows": 0}
    same_rows, unchanged = ParentIndex.same_rows, ParentIndex.unchanged

    def counting_same_rows(self: ParentIndex, rows: bytes) -> bool:
        result = same_rows(self, rows)
        calls["same"] += result
        return result

    def counting_unchanged(self: ParentIndex, rows: bytes) -> list[bool]:
        calls["rows"] += 1
        return unchanged(self, rows)

    monkeypatch.setattr(ParentIndex, "same_rows", counting_same_rows)
    monkeypatch.setattr(ParentIndex, "unchanged", counting_unchanged)
    inc, inc_chunks, regions = chunk_all(disk, parent())
    # Both paths ran: whole unchanged runs and runs with some changed units.
    assert calls["same"] > 0 and calls["rows"] > 0, calls
    assert 0 < inc.reused_bytes and inc_chunks
    check_against_disk(disk, inc, [inc_chunks, full_chunks], regions)

    # The reference: no shortcut, one parent lookup per unit.
    def per_unit(self: ParentIndex, rows: bytes) -> list[bool]:
        return [self.unit_hash(int.from_bytes(rows[i:i + 8], "little")) == rows[i + 8:i + ROW]
                for i in range(0, len(rows), ROW)]

    monkeypatch.setattr(ParentIndex, "same_rows", lambda self, rows: False)
    monkeypatch.setattr(ParentIndex, "unchanged", per_unit)
    ref, ref_chunks, _ = chunk_all(disk, parent())
    assert bytes(inc.units) == bytes(ref.units)
    assert bytes(inc.extents) == bytes(ref.extents)
    assert (inc.zeroed, inc.unreadable, inc.reused_bytes) == (ref.zeroed, ref.unreadable, ref.reused_bytes)
    assert [c.raw() for c in inc_chunks] == [c.raw() for c in ref_chunks]


def test_unchanged_disk_reuses_everything_on_a_few_buffers(tmp_path: Path) -> None:
    info = cached_disk_info("mbr-small")
    full, full_chunks, regions = chunk_all(info.path)
    inc, inc_chunks, _ = chunk_all(info.path, ParentIndex(bytes(full.units), bytes(full.extents)))
    assert not inc_chunks and inc.reused_bytes == sum(e[1] for e in extents(full))
    assert bytes(inc.units) == bytes(full.units)
    assert {e[4] for e in extents(inc)} == {1}
    check_against_disk(info.path, inc, [inc_chunks, full_chunks], regions)
    n_pieces = sum(1 for _ in pieces.plan_pieces(regions))
    # Buffers come back once their piece is done (nothing pins them: nothing is stored).
    assert inc.piece_reader.allocated <= pieces.READ_AHEAD + 3 < n_pieces // 4, \
        (inc.piece_reader.allocated, n_pieces)


def test_sector_by_sector_zero_blocks(tmp_path: Path) -> None:
    """Raw regions: all-zero blocks become zero extents, the rest is stored exactly."""
    info = cached_disk_info("mbr-small")
    chunker, chunks, regions = chunk_all(info.path, sector_by_sector=True)
    assert {r.kind for r in regions} >= {"raw"}
    assert chunker.zeroed and chunks
    check_against_disk(info.path, chunker, [chunks], regions)
