"""Review of format version 2: long random chains restore every point byte for byte.

Small MBR disks (no root needed): a partition of an unknown type at an odd start (sector 63, so its
64 KiB zero blocks cut 16 KiB units in pieces: units whose stored bytes grow and shrink), a gap, a
second partition and unpartitioned space at the end. Each generation changes random ranges, blanks
64 KiB blocks, and puts back the content an older generation had (units freed, then reused with an
ancestor's content). Every point is checked through `open_view` (every byte) and a restore onto a
target filled with 0xA5 (so a byte the restore fails to write shows), then again after a merge of a
middle point.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Callable

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.progress import Progress
from tests.format.v1_images import DATA, PART_START, make_disk

KiB, MiB = 1024, 1 << 20
SIZE = 4 * MiB
P1 = (63 * 512, 1536 * KiB + 7 * 512)  # odd start and size
P2 = (2 * MiB, SIZE - 2 * MiB - 192 * KiB)  # unpartitioned tail after it
PARTS = (P1, P2)
SEEDS = [int(s) for s in os.environ.get("V2_REVIEW_SEEDS", "1 2 3").split()]


def mbr(disk: bytearray) -> None:
    disk[0:512] = bytes(512)
    disk[440:444] = (0x5EED1234).to_bytes(4, "little")
    for i, (start, size) in enumerate(PARTS):
        e = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + (start // 512).to_bytes(4, "little") + (size // 512).to_bytes(4, "little")
        disk[446 + 16 * i:462 + 16 * i] = e
    disk[510:512] = b"\x55\xaa"


def base_disk(rng: random.Random) -> bytearray:
    disk = bytearray(SIZE)
    for block in range(1, SIZE // 4096):
        k = rng.random()
        if k < 0.3:
            continue
        disk[block * 4096:(block + 1) * 4096] = (f"b{block} " * 1400).encode()[:4096]
    mbr(disk)
    assert len(disk) == SIZE
    return disk


def mutate(disk: bytearray, rng: random.Random, history: list[bytes], parts: tuple = PARTS,
           table: Callable[[bytearray], None] = mbr) -> None:
    size_ = len(disk)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.35:  # random bytes anywhere but sector 0
            off = rng.randrange(512, size_ - 1)
            n = min(rng.choice([1, 100, 4096, 5000, 16384, 40000, 70000]), size_ - off)
            disk[off:off + n] = rng.randbytes(n)
        elif op < 0.6:  # blank a 64 KiB block of a partition (its own grid) or any range
            start, size = rng.choice(parts)
            b = rng.randrange(0, size // (64 * KiB))
            off = start + b * 64 * KiB
            n = rng.choice([64 * KiB, 128 * KiB, 20000])
            disk[off:off + n] = bytes(len(disk[off:off + n]))
        elif op < 0.85 and history:  # put back what an older generation had there
            old = rng.choice(history)
            off = rng.randrange(512, size_ - 1)
            n = min(rng.choice([16384, 64 * KiB, 200 * KiB, 3000]), size_ - off)
            disk[off:off + n] = old[off:off + n]
        else:  # edges of the partitions: the first and last bytes
            start, size = rng.choice(parts)
            for at in (start, start + size - 700, start - 300, start + size):
                if 512 <= at < size_ - 700:
                    disk[at:at + 700] = rng.randbytes(700) if rng.random() < 0.7 else bytes(700)
    table(disk)
    assert len(disk) == size_


def outside(off: int, parts: tuple = PARTS) -> bool:
    return not any(s <= off < s + n for s, n in parts)


def check_point(folder: Path, image_id: str, data: bytes, tmp: Path, parts: tuple = PARTS) -> None:
    size = len(data)
    with open_view(str(folder), image_id, lambda: None) as view:
        got = view.read(0, size)
        # The restore's per-image passes: every byte of the point's state once, from one image.
        chain = view.chain
        places = sorted((off, n) for ref in range(len(chain.manifests))
                        for _, group in chain.chunk_groups(ref) for off, n, _ in group)
        assert all(a[0] + a[1] <= b[0] for a, b in zip(places, places[1:])), image_id
        assert sum(n for _, n in places) == chain.data_bytes(), image_id
    assert got == data, (image_id, first_diff(got, data))
    target = tmp / "target.img"
    target.write_bytes(b"\xa5" * size)
    execute_restore(plan_restore(str(folder), image_id, str(target), lambda: None, Progress(), keep_layout=True), Progress())
    out = target.read_bytes()
    target.unlink()
    # Outside the partitions an all-zero 64 KiB block is not stored (nor written): only those may differ.
    bad = [i for i in range(0, size, 512) if out[i:i + 512] != data[i:i + 512]
           and not (outside(i, parts) and (data[i:i + 512] == bytes(512) or False))]
    assert not bad, (image_id, [hex(b) for b in bad[:10]], len(bad))


def first_diff(a: bytes, b: bytes) -> int | None:
    for i in range(0, len(a), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            return i
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_v2_review_long_random_chain(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "bk"
    source = tmp_path / "source.img"
    disk = base_disk(rng)
    history: list[bytes] = []
    points: dict[str, bytes] = {}
    order: list[str] = []
    for step in range(14):
        if step:
            mutate(disk, rng, history)
        mode = "full" if step == 0 else rng.choice(["incremental"] * 3 + ["differential"])
        source.write_bytes(bytes(disk))
        r = backup(str(source), str(folder), BackupOptions(mode=mode), Progress())
        points[r.image_id] = bytes(disk)
        order.append(r.image_id)
        history.append(bytes(disk))
    for image_id in order:
        verify(str(folder), image_id, lambda: None, Progress())
        check_point(folder, image_id, points[image_id], tmp_path)
    # Fold a middle point into a full; every point still complete restores as before.
    mid = order[len(order) // 2]
    res = merge(str(folder), mid, lambda: None, Progress())
    points[res.image_id] = points[mid]
    complete = {i.id for i in Repository(str(folder)).list_images() if i.complete}
    assert res.image_id in complete
    for image_id in complete:
        check_point(folder, image_id, points[image_id], tmp_path)
    # And the chain goes on from there.
    mutate(disk, rng, history)
    source.write_bytes(bytes(disk))
    r = backup(str(source), str(folder), BackupOptions(mode="incremental"), Progress())
    check_point(folder, r.image_id, bytes(disk), tmp_path)


def v1_table(disk: bytearray) -> None:
    """The MBR of the version-1 fixture disk (tests/format/v1_images.py), put back after a change."""
    disk[0:512] = FIXTURE_MBR


FIXTURE_MBR = b""


@pytest.mark.parametrize("seed", SEEDS)
def test_v2_review_v2_chain_on_version_1_images(tmp_path: Path, seed: int) -> None:
    """Version-2 incrementals and differentials (random changes) on the version-1 fixtures: every
    point, version 1 or 2, restores to its disk; then a merge of a middle point."""
    global FIXTURE_MBR
    images = __import__("json").loads((DATA / "images.json").read_text())["plain"]
    folder = tmp_path / "plain"
    shutil.copytree(DATA / "plain", folder)
    source = tmp_path / "source.img"
    points: dict[str, bytes] = {}
    for image_id, generation in zip(images, (0, 1)):
        make_disk(source, generation)
        points[image_id] = source.read_bytes()
    disk = bytearray(points[images[1]])
    FIXTURE_MBR = bytes(disk[:512])
    parts = ((PART_START, len(disk) - PART_START),)
    rng = random.Random(seed)
    history = list(points.values())
    order = list(images)
    for step in range(10):
        mutate(disk, rng, history, parts, v1_table)
        mode = rng.choice(["incremental"] * 3 + ["differential"])
        source.write_bytes(bytes(disk))
        r = backup(str(source), str(folder), BackupOptions(mode=mode), Progress())
        points[r.image_id] = bytes(disk)
        order.append(r.image_id)
        history.append(bytes(disk))
    for image_id in order:
        verify(str(folder), image_id, lambda: None, Progress())
        check_point(folder, image_id, points[image_id], tmp_path, parts)
    mid = order[len(order) // 2]
    res = merge(str(folder), mid, lambda: None, Progress())
    points[res.image_id] = points[mid]
    for image_id in {i.id for i in Repository(str(folder)).list_images() if i.complete}:
        check_point(folder, image_id, points[image_id], tmp_path, parts)


def test_v2_review_unchanged_disk_stores_nothing_after_a_merge(tmp_path: Path) -> None:
    """Only cost, never wrong bytes: an incremental of an unchanged disk on a merged full stores again
    the units whose runs the merge fed joined (here the unit where the gap meets partition 1)."""
    rng = random.Random(3)
    folder, source = tmp_path / "bk", tmp_path / "source.img"
    disk = base_disk(rng)
    source.write_bytes(bytes(disk))
    backup(str(source), str(folder), BackupOptions(), Progress())
    inc = backup(str(source), str(folder), BackupOptions(mode="incremental"), Progress())
    assert inc.data_bytes == 0
    merged = merge(str(folder), inc.image_id, lambda: None, Progress())
    again = backup(str(source), str(folder), BackupOptions(mode="incremental"), Progress())
    assert again.parent == merged.image_id
    assert again.data_bytes == 0
