"""Review of format version 2: an encrypted random chain (sealed table blocks) restores every point.

The disks and changes of tests/engine/test_v2_review_chains.py, with a password: each point read
whole through `open_view` and restored onto a target filled with 0xA5, then a merge of a middle
point and an incremental on the merged full.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.crypto.kdf import KdfParams
from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.progress import Progress
from tests.engine.test_v2_review_chains import PARTS, base_disk, mutate, outside

PW = b"review password"
LIGHT = KdfParams(memory_kib=19456, iterations=2, lanes=1)


def check(folder: Path, image_id: str, data: bytes, tmp: Path) -> None:
    with open_view(str(folder), image_id, lambda: PW) as view:
        assert view.read(0, len(data)) == data, image_id
    target = tmp / "target.img"
    target.write_bytes(b"\xa5" * len(data))
    execute_restore(plan_restore(str(folder), image_id, str(target), lambda: PW, Progress(), keep_layout=True),
                    Progress())
    out = target.read_bytes()
    target.unlink()
    bad = [i for i in range(0, len(data), 512) if out[i:i + 512] != data[i:i + 512]
           and not (outside(i, PARTS) and data[i:i + 512] == bytes(512))]
    assert not bad, (image_id, bad[:5])


@pytest.mark.parametrize("seed", [7])
def test_v2_review_encrypted_random_chain(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    folder, source = tmp_path / "bk", tmp_path / "source.img"
    disk = base_disk(rng)
    history: list[bytes] = []
    points: dict[str, bytes] = {}
    order: list[str] = []
    for step in range(8):
        if step:
            mutate(disk, rng, history)
        mode = "full" if step == 0 else rng.choice(["incremental", "incremental", "differential"])
        source.write_bytes(bytes(disk))
        r = backup(str(source), str(folder), BackupOptions(mode=mode, password=PW, kdf=LIGHT), Progress())
        points[r.image_id] = bytes(disk)
        order.append(r.image_id)
        history.append(bytes(disk))
    for image_id in order:
        verify(str(folder), image_id, lambda: PW, Progress())
        check(folder, image_id, points[image_id], tmp_path)
    mid = order[len(order) // 2]
    res = merge(str(folder), mid, lambda: PW, Progress(), kdf=LIGHT)
    points[res.image_id] = points[mid]
    for image_id in {i.id for i in Repository(str(folder)).list_images() if i.complete}:
        check(folder, image_id, points[image_id], tmp_path)
    mutate(disk, rng, history)
    source.write_bytes(bytes(disk))
    r = backup(str(source), str(folder), BackupOptions(mode="incremental", password=PW, kdf=LIGHT), Progress())
    check(folder, r.image_id, bytes(disk), tmp_path)
