"""Review of format version 2: the parent's unit rows reach an incremental a block or two at a time.

`overlay.resolved_units` promises rows "in blocks" and `chunker.ParentUnits` "a block or two of rows
whatever the disk size". Two shapes broke that on real chains before they were fixed:

- a full image of a nearly empty disk keeps its few units in one block spanning the disk; when the
  disk is then filled, the next incremental's rows all fall inside that one block's key range, and
  `overlay_units` yields them as one batch (its ``out`` list holds every one);
- an incremental that stores nothing over a long run of the parent's units (a partition wiped or
  emptied) makes `ParentUnits._fill` append every batch of that run to its window before it bisects
  (and copy the growing window once per batch).

Each batch then grew with the disk: 24 bytes a unit (plus a Python bytes object per row in ``out``),
~45 MB per 30 GiB of changed data, and the window's copies were quadratic in the run's length. Both
now go a block at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.chain import load_chain
from core.engine.chunker import ParentUnits
from core.engine.overlay import resolved_units
from core.engine.repo import Repository
from core.format.c_image import HASH_UNIT, TABLE_BLOCK_ROWS
from core.progress import Progress

MiB = 1 << 20
SIZE = 256 * MiB
MIDDLE = (16 * MiB, 200 * MiB)  # filled after the full: 12 800 units, three blocks' worth


def write_disk(path: Path, filled: bool) -> None:
    with open(path, "wb") as f:
        f.truncate(SIZE)
        f.write(b"start of the disk " * 4000)
        f.seek(SIZE - 80_000)
        f.write(b"end of the disk " * 5000)
        if filled:
            f.seek(MIDDLE[0])
            for unit in range(MIDDLE[1] // HASH_UNIT):
                f.write((f"unit {unit} " * 2000).encode()[:HASH_UNIT])


@pytest.fixture(scope="module")
def chain_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, Path, str]:
    base = tmp_path_factory.mktemp("mem")
    disk, folder = base / "disk.img", base / "bk"
    write_disk(disk, filled=False)
    full = backup(str(disk), str(folder), BackupOptions(), Progress()).image_id
    write_disk(disk, filled=True)
    inc = backup(str(disk), str(folder), BackupOptions(mode="incremental"), Progress()).image_id
    # A full image of the filled disk: its unit table is four blocks, streamed as they are.
    filled = base / "filled"
    only = backup(str(disk), str(filled), BackupOptions(), Progress()).image_id
    disk.unlink()
    return folder, full, inc, filled, only


def test_v2_review_resolved_units_come_in_blocks(chain_folder: tuple[Path, str, str, Path, str]) -> None:
    folder, _, inc, _, _ = chain_folder
    chain = load_chain(Repository(str(folder)), inc, lambda: None)
    try:
        rows = [len(batch) // 24 for batch in resolved_units(chain)]
    finally:
        for m in chain:
            m.close()
    assert sum(rows) >= MIDDLE[1] // HASH_UNIT
    assert max(rows) <= 2 * TABLE_BLOCK_ROWS, rows


def test_v2_review_parent_window_stays_small_over_a_wiped_run(chain_folder: tuple[Path, str, str, Path, str]) -> None:
    """An incremental after the middle was wiped: its first unit after the run looks up the
    parent's (a full image whose unit table comes in blocks) at the end of the disk."""
    _, _, _, folder, only = chain_folder
    chain = load_chain(Repository(str(folder)), only, lambda: None)
    try:
        assert max(len(b) // 24 for b in resolved_units(chain)) <= TABLE_BLOCK_ROWS
        parent = ParentUnits(resolved_units(chain))
        assert parent.unit_hash(0) is not None
        parent.gone = []
        last = (SIZE - 1) // HASH_UNIT
        assert parent.unit_hash(last) is not None
        assert len(parent.gone) >= MIDDLE[1] // HASH_UNIT  # every unit of the run is gone
        assert len(parent._rows) // 24 <= 2 * TABLE_BLOCK_ROWS, len(parent._rows) // 24
    finally:
        for m in chain:
            m.close()
