"""Review of format version 2: runs of units wiped and refilled across several table blocks.

A 128 MiB raw disk (no partition table: every 64 KiB zero block is a zero extent). After the full,
an incremental wipes most of it (tombstones and holes over ~7000 units, two blocks' worth, buried
as the parent's cursor passes them), the next refills part of it with the full's own content (the
parent says "no unit": stored again), a differential on the full wipes another run and brings back
the rest (inherited from the full), and an incremental on that changes scattered units. Every point
reads back whole, and the restore of each matches, on a target filled with 0xA5.
"""

from __future__ import annotations

import random
from pathlib import Path

from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.view import open_view
from core.format.c_image import TABLE_BLOCK_ROWS
from core.progress import Progress

MiB = 1 << 20
SIZE = 128 * MiB
UNIT = 16384


def filled() -> bytearray:
    rng = random.Random(4)
    data = bytearray(SIZE)
    for u in range(SIZE // UNIT):
        if rng.random() < 0.9:
            data[u * UNIT:(u + 1) * UNIT] = (b"%d " % u * 10000)[:UNIT]
    assert len(data) == SIZE
    return data


def test_v2_review_wipe_and_refill_across_blocks(tmp_path: Path) -> None:
    src, folder = tmp_path / "src.img", tmp_path / "bk"
    states: dict[str, bytes] = {}
    full_data = filled()
    data = bytearray(full_data)

    def take(mode: str) -> None:
        src.write_bytes(bytes(data))
        r = backup(str(src), str(folder), BackupOptions(mode=mode), Progress())
        states[r.image_id] = bytes(data)

    take("full")
    data[8 * MiB:120 * MiB] = bytes(112 * MiB)  # wiped
    take("incremental")
    m = Repository(str(folder)).load(list(states)[-1], lambda: None)
    assert m.meta.unit_count > TABLE_BLOCK_ROWS, m.meta.unit_count  # tombstones over several blocks
    m.close()
    data[40 * MiB:72 * MiB] = full_data[40 * MiB:72 * MiB]  # the full's content again
    take("incremental")
    data = bytearray(full_data)
    data[70 * MiB + 5000:120 * MiB + 123] = bytes(50 * MiB - 4877)  # another run, odd edges
    take("differential")
    rng = random.Random(9)
    for _ in range(300):
        at = rng.randrange(0, SIZE - 9000)
        n = rng.randrange(1, 9000)
        data[at:at + n] = b"\x01" * n if rng.random() < 0.5 else bytes(n)
    take("incremental")
    assert len(data) == SIZE
    for image_id, expected in states.items():
        with open_view(str(folder), image_id, lambda: None) as view:
            assert view.read(0, SIZE) == expected, image_id
        target = tmp_path / "target.img"
        target.write_bytes(b"\xa5" * SIZE)
        execute_restore(plan_restore(str(folder), image_id, str(target), lambda: None, Progress()), Progress())
        assert target.read_bytes() == expected, image_id
        target.unlink()
