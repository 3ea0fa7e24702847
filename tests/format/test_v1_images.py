"""R-63: images of format version 1 stay readable, restorable, usable as parents and mergeable.

The images under data/v1/ were written by the format-1 engine (tests/format/v1_images.py says how);
every disk they were made of is rebuilt here byte for byte, so each restore is compared with the
disk it came from. A version-2 incremental continues a version-1 chain, and a merge of that mixed
chain writes a version-2 full.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.crypto.kdf import KdfParams
from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.format.c_image import FORMAT_VERSION, ManifestHeader
from core.progress import Progress
from tests.format.v1_images import DATA, DISK_SIZE, FIXTURE_PASSWORD, MiB, make_disk
from tests.images import run_rescue

LIGHT = KdfParams(memory_kib=19456, iterations=2, lanes=1)
IMAGES: dict[str, list[str]] = json.loads((DATA / "images.json").read_text())


def version_of(folder: Path, image_id: str) -> int:
    head = (folder / f"{image_id}.manifest").read_bytes()[:ManifestHeader.size]
    return int(ManifestHeader.parse(head)["version"])


def restored(folder: Path, image_id: str, tmp_path: Path, pw: bytes | None = None) -> bytes:
    target = tmp_path / f"restored-{image_id}.img"
    target.write_bytes(bytes(DISK_SIZE))
    execute_restore(plan_restore(str(folder), image_id, str(target), lambda: pw, Progress()), Progress())
    data = target.read_bytes()
    target.unlink()
    return data


def disk_bytes(tmp_path: Path, generation: int) -> bytes:
    path = tmp_path / f"gen{generation}.img"
    make_disk(path, generation)
    return path.read_bytes()


def test_the_fixtures_are_version_1() -> None:
    for name, ids in IMAGES.items():
        for image_id in ids:
            assert version_of(DATA / name, image_id) == 1, (name, image_id)


def test_every_version_1_point_verifies_and_restores_to_its_disk(tmp_path: Path) -> None:
    plain, enc = DATA / "plain", DATA / "enc"
    full, inc = IMAGES["plain"]
    for folder, image_id, pw, generation in ((plain, full, None, 0), (plain, inc, None, 1),
                                             (enc, IMAGES["enc"][0], FIXTURE_PASSWORD, 1)):
        verify(str(folder), image_id, lambda: pw, Progress())
        assert restored(folder, image_id, tmp_path, pw) == disk_bytes(tmp_path, generation), image_id
    with open_view(str(plain), inc, lambda: None) as view:
        disk = disk_bytes(tmp_path, 1)
        for off, n in ((0, 512), (64 * 1024 - 100, 9000), (2 * MiB - 5, 128 * 1024 + 10), (DISK_SIZE - 700, 700)):
            assert view.read(off, n) == disk[off:off + n], off
    listed = run_rescue("list", str(plain))
    assert listed.returncode == 0 and listed.stdout.count(" ok") == 2, listed.stdout


def test_a_version_2_incremental_continues_a_version_1_chain_and_merges(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(DATA / "plain", folder)
    source = tmp_path / "source.img"
    make_disk(source, 1)
    data = bytearray(source.read_bytes())
    data[1 * MiB:1 * MiB + 20000] = b"generation two " * 1333 + b"xxxxx"  # changed
    data[2 * MiB + 300 * 1024:2 * MiB + 364 * 1024] = bytes(64 * 1024)  # blanked
    source.write_bytes(bytes(data))
    r = backup(str(source), str(folder), BackupOptions(mode="incremental"), Progress())
    assert version_of(folder, r.image_id) == FORMAT_VERSION
    # Only what changed is stored and recorded: a few units, not the disk's.
    repo = Repository(str(folder))
    m = repo.load(r.image_id, lambda: None)
    assert [p.id for p in m.meta.chain] == list(reversed(IMAGES["plain"]))
    assert m.meta.unit_count < 20 and r.data_bytes < 200 * 1024, (m.meta.unit_count, r.data_bytes)
    verify(str(folder), r.image_id, lambda: None, Progress())
    assert restored(folder, r.image_id, tmp_path) == bytes(data)
    # The older points are untouched by the new image.
    assert restored(folder, IMAGES["plain"][1], tmp_path) == disk_bytes(tmp_path, 1)

    merged = merge(str(folder), r.image_id, lambda: None, Progress())
    assert version_of(folder, merged.image_id) == FORMAT_VERSION
    verify(str(folder), merged.image_id, lambda: None, Progress())
    assert restored(folder, merged.image_id, tmp_path) == bytes(data)


@pytest.mark.parametrize("pw", [None, FIXTURE_PASSWORD])
def test_version_2_chain_restores_every_point(tmp_path: Path, pw: bytes | None) -> None:
    """A chain written by this version (full, incremental, differential, incremental) restores each
    point to its disk, and the chain's resolution holds blocks, not tables."""
    folder = tmp_path / "chain"
    source = tmp_path / "source.img"
    disks: dict[str, bytes] = {}
    for step, mode in enumerate(("full", "incremental", "differential", "incremental")):
        make_disk(source, step % 2)
        data = bytearray(source.read_bytes())
        if step >= 2:
            data[(step * 300) * 1024:(step * 300 + 50) * 1024] = bytes([step]) * (50 * 1024)
        if step == 3:
            data[2 * MiB + 64 * 1024:2 * MiB + 192 * 1024] = bytes(128 * 1024)
        source.write_bytes(bytes(data))
        r = backup(str(source), str(folder), BackupOptions(mode=mode, password=pw, kdf=LIGHT), Progress())
        disks[r.image_id] = bytes(data)
    for image_id, data in disks.items():
        verify(str(folder), image_id, lambda: pw, Progress())
        assert restored(folder, image_id, tmp_path, pw) == data, image_id
        with open_view(str(folder), image_id, lambda: pw) as view:
            assert view.read(0, DISK_SIZE) == data, image_id
