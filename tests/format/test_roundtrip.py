"""Backup -> verify -> restore round trips of small real disks through the engine API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.errors import PasswordRequired, TargetRefused, WrongPassword
from core.progress import Progress
from tests.images import small_disk


def sha(path: Path, length: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = length if length is not None else 1 << 62
        while remaining > 0:
            b = f.read(min(1 << 20, remaining))
            if not b:
                break
            h.update(b)
            remaining -= len(b)
    return h.hexdigest()


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return small_disk(tmp_path / "src.img")


def restore_to(folder: Path, target: Path, size: int, password: bytes | None = None,
               keep_layout: bool = False) -> None:
    with open(target, "wb") as f:
        f.truncate(size)
    plan = plan_restore(str(folder), None, str(target), lambda: password, Progress(), keep_layout=keep_layout)
    execute_restore(plan, Progress())


@pytest.mark.parametrize("password", [None, b"correct horse"])
@pytest.mark.parametrize("split", [None, 8 << 20])
def test_roundtrip_bit_exact_used_data(disk: Path, tmp_path: Path, password: bytes | None, split: int | None) -> None:
    """Restoring onto a zeroed target reproduces the source exactly: the source's free space is zero too,
    except in the raw partition, whose zero blocks are restored as zeros."""
    folder = tmp_path / "bk"
    res = backup(str(disk), str(folder), BackupOptions(password=password, split=split), Progress())
    assert res.data_bytes > 0 and res.stored_bytes < res.data_bytes
    if split:
        assert len(res.volumes) >= 2
    v = verify(str(folder), None, lambda: password, Progress())
    assert v.chunks == res.chunks and not v.bad
    target = tmp_path / "dst.img"
    restore_to(folder, target, disk.stat().st_size, password)
    assert sha(target) == sha(disk)


def test_restore_onto_larger_file_keeps_everything(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    backup(str(disk), str(folder), BackupOptions(), Progress())
    target = tmp_path / "dst.img"
    restore_to(folder, target, disk.stat().st_size + (64 << 20), keep_layout=True)
    assert sha(target, disk.stat().st_size) == sha(disk)


def test_restore_refuses_too_small_target_and_writes_nothing(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    backup(str(disk), str(folder), BackupOptions(), Progress())
    target = tmp_path / "small.img"
    with open(target, "wb") as f:
        f.write(b"\xaa" * (1 << 20))
    with pytest.raises(TargetRefused) as e:
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    assert "small" in e.value.message or str(1 << 20) in e.value.message
    assert target.read_bytes() == b"\xaa" * (1 << 20)


def test_wrong_or_missing_password(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    backup(str(disk), str(folder), BackupOptions(password=b"right"), Progress())
    with pytest.raises(WrongPassword):
        verify(str(folder), None, lambda: b"wrong", Progress())
    with pytest.raises(PasswordRequired):
        verify(str(folder), None, lambda: None, Progress())


def test_two_backups_of_same_data_use_different_keys(disk: Path, tmp_path: Path) -> None:
    """R-23: identical data, same password: ciphertexts differ (fresh data key per image)."""
    folder = tmp_path / "bk"
    a = backup(str(disk), str(folder), BackupOptions(password=b"pw"), Progress())
    b = backup(str(disk), str(folder), BackupOptions(password=b"pw"), Progress())
    va = (folder / a.volumes[0]).read_bytes()
    vb = (folder / b.volumes[0]).read_bytes()
    assert va[128:4096] != vb[128:4096]
