"""The backup plan's memory follows the number of used runs at 16 bytes a run, not ~260.

A large Windows volume written over years has its used space in hundreds of thousands to millions
of pieces; a plan holding a Python object per piece grew past the 150 MiB bound near a million runs
(measured: 138 MiB retained for 635 022 runs). Here a synthetic NTFS volume (tests/scale/synthdisk.py,
real mkntfs metadata, $Bitmap set in runs of 1-8 clusters) is planned under tracemalloc; the regions
are iterated to prove they are all there and in order.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from core.engine.plan import plan_backup
from core.io.reader import FdReader
from tests.conftest import need_root_tools
from tests.scale.synthdisk import GiB, build

pytestmark = [pytest.mark.root]

MiB = 1 << 20
PER_RUN = 24  # bytes a run may cost in the plan: 16 packed, the rest for the lists around them


def test_plan_of_a_fragmented_volume_is_packed(tmp_path: Path) -> None:
    need_root_tools("mkntfs", "sfdisk", "losetup")
    layout = build(tmp_path, 8 * GiB, 512 * MiB, seed=5, run_max=8)
    fd = os.open(layout.base, os.O_RDONLY)
    try:
        reader = FdReader(fd, os.fstat(fd).st_size, layout.base)
        tracemalloc.start()
        try:
            plan = plan_backup(reader, 512)
            retained, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        os.close(fd)
    runs = pos = used = 0
    for r in plan.regions:
        assert r.start >= pos and r.length > 0
        pos = r.start + r.length
        runs += 1
        used += r.length if r.kind == "used" else 0
    assert runs > 30_000  # fragmented as intended: enough runs for the per-run cost to show
    assert used == plan.regions.bytes_of("used") >= layout.synthetic_bytes
    assert retained < 1 * MiB + PER_RUN * runs, f"{retained} bytes retained for {runs} runs"
