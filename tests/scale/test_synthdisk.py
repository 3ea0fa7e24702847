"""The synthetic disk's content (tests/scale/synthdisk.py) is a function of (offset, generation) alone.

The FUSE server gets reads of whatever offsets and lengths the kernel makes of the engine's; a byte
must read the same however the read around it is cut, in every run, and a generation must change
~1 % of the generated blocks and nothing else. Runs without root: a small sparse base file stands in
for the mkntfs one.
"""

from __future__ import annotations

import random
from pathlib import Path

import zstandard

from tests.scale.synthdisk import BLOCK, Content, Layout

MiB = 1 << 20


def layout(tmp_path: Path) -> Layout:
    base = tmp_path / "base"
    with open(base, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(5000)
        f.write(b"metadata" * 100)  # bytes of the base outside the synthetic extents must show through
    extents = [(3 * 4096, 10 * 4096), (1 * MiB, 40 * MiB + 4096), (50 * MiB, 4096)]
    return Layout(str(base), 80 * MiB, 3, extents)  # the disk is longer than its base: zeros at the end


def test_a_byte_reads_the_same_however_the_read_is_cut(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    whole = Content(lay, 0).read(0, lay.size)
    assert len(whole) == lay.size
    assert whole[5000:5800] == b"metadata" * 100
    assert whole[60 * MiB:] == bytes(20 * MiB)
    rng = random.Random(1)
    again = Content(lay, 0)
    for _ in range(200):
        off = rng.randrange(lay.size)
        size = rng.choice([1, 511, 4096, 131072, 3 * BLOCK + 17])
        assert again.read(off, size) == whole[off:off + size]
    assert again.read(lay.size - 10, 100) == whole[-10:]  # past the end: short, as a file is


def test_a_generation_changes_about_one_percent_of_the_blocks(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    g0, g1 = Content(lay, 0), Content(lay, 1)
    blocks = [b for a, n in lay.extents for b in range(a // BLOCK, (a + n) // BLOCK)]
    changed = [b for b in blocks if g0.block(b) != g1.block(b)]
    assert 0 < len(changed) < 0.03 * len(blocks)
    base_part = g0.read(0, 12288), g1.read(0, 12288)
    assert base_part[0] == base_part[1]


def test_blocks_are_a_mix_of_compressible_and_not(tmp_path: Path) -> None:
    c = Content(layout(tmp_path), 0)
    ratios = [len(zstandard.ZstdCompressor(level=1).compress(c.block(b))) / BLOCK for b in range(16, 300)]
    assert any(r > 0.99 for r in ratios)  # random
    assert any(0.45 < r < 0.8 for r in ratios)  # text-like
    assert any(r < 0.05 for r in ratios)  # repetitive
