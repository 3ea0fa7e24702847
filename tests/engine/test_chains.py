"""Incremental and differential chains on a factory disk changed by "days of use".

Every restore point restores to exactly its state (file hashes through ntfs-3g); incrementals stay
small (fine-grained change tracking); a missing or replaced parent is a hard error naming it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.errors import IncompleteImage, IntegrityError, UsageError
from core.progress import Progress
from tests.conftest import need_root_tools
from tests.dayofuse import day_of_use
from tests.factory import cached_disk_info, copy_disk
from tests.ntfs3g import partition_hashes

pytestmark = pytest.mark.root
VOLATILE = {"pagefile.sys", "hiberfil.sys"}


def files(disk: Path) -> dict[int, dict[str, str]]:
    return {n: {k: v for k, v in h.items() if k not in VOLATILE} for n, h in partition_hashes(disk).items()}


def restore(folder: Path, image: str, target: Path, size: int, pw: bytes | None) -> None:
    target.unlink(missing_ok=True)
    with open(target, "wb") as f:
        f.truncate(size)
    execute_restore(plan_restore(str(folder), image, str(target), lambda: pw, Progress()), Progress())


@pytest.mark.parametrize("pw", [None, b"chain pw"])
def test_mixed_chain_restores_every_point(tmp_path: Path, pw: bytes | None) -> None:
    """full -> incr -> incr -> diff -> incr: each point restores to its own state exactly."""
    need_root_tools("ntfs-3g")
    info = cached_disk_info("mbr-small", hiberfil_magic=b"wake")
    disk = copy_disk(info.path, tmp_path / "disk.img")
    folder = tmp_path / "bk"
    points = []
    for day, mode in enumerate(["full", "incremental", "incremental", "differential", "incremental"]):
        if day:
            day_of_use(info, disk, seed=day)
        res = backup(str(disk), str(folder), BackupOptions(password=pw, mode=mode), Progress())
        assert res.kind == mode
        points.append((res.image_id, files(disk), res))
    full = points[0][2]
    for image_id, state, res in points[1:]:
        # ~2% of the files touched: an incremental is a small fraction of the full image.
        assert res.stored_bytes < 0.15 * full.stored_bytes, (res.kind, res.stored_bytes, full.stored_bytes)
    assert points[3][2].parent == points[0][0]  # differential: on the full
    assert points[4][2].parent == points[3][0]  # incremental: on the latest
    for image_id, state, _ in points:
        v = verify(str(folder), image_id, lambda: pw, Progress())
        assert v.images[0] == image_id and not v.bad
        target = tmp_path / "t.img"
        restore(folder, image_id, target, info.size, pw)
        assert files(target) == state, f"restore point {image_id} differs"


def test_missing_or_replaced_parent_is_a_hard_error(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g")
    info = cached_disk_info("mbr-small", hiberfil_magic=b"wake")
    disk = copy_disk(info.path, tmp_path / "disk.img")
    folder = tmp_path / "bk"
    full = backup(str(disk), str(folder), BackupOptions(), Progress())
    day_of_use(info, disk, seed=9)
    inc = backup(str(disk), str(folder), BackupOptions(mode="incremental"), Progress())
    # Replace the parent by another valid image under the same name.
    other = tmp_path / "other"
    backup(str(disk), str(other), BackupOptions(), Progress())
    saved = tmp_path / "saved"
    saved.mkdir()
    for p in folder.glob(f"{full.image_id}.*"):
        shutil.move(str(p), saved / p.name)
    for p in other.glob("*"):
        if p.name != "rescue.lock":
            p.rename(folder / p.name.replace(p.name.split(".")[0], full.image_id))
    with pytest.raises(IntegrityError) as e:
        verify(str(folder), inc.image_id, lambda: None, Progress())
    assert full.image_id in e.value.message
    for p in folder.glob(f"{full.image_id}.*"):
        p.unlink()
    with pytest.raises(IncompleteImage) as e2:
        verify(str(folder), inc.image_id, lambda: None, Progress())
    assert full.image_id in e2.value.message


def test_incremental_refused_for_another_disk(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g")
    a = cached_disk_info("mbr-small", hiberfil_magic=b"wake")
    b = cached_disk_info("gpt-small")
    folder = tmp_path / "bk"
    backup(str(a.path), str(folder), BackupOptions(), Progress())
    with pytest.raises(UsageError) as e:
        backup(str(b.path), str(folder), BackupOptions(mode="incremental"), Progress())
    assert "new full backup" in e.value.message
