"""Restore onto 1.5x and ~0.6x disks, and clone --partitions system onto a smaller blank disk.

Checked with the real tools: files identical through ntfs-3g, `ntfsfix -n` clean and `ntfsresize
--info` accepting the volume (ntfsresize leaves a resized volume flagged for one chkdsk at Windows'
next boot, as it always does, hence --force), hidden sectors equal to the partition starts, GPT valid
(`sgdisk -v`), and the plan printed before anything is written.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.clone import execute_clone, plan_clone
from core.engine.restore import execute_restore, plan_restore
from core.errors import TargetRefused
from core.progress import Progress
from tests.conftest import need_root_tools
from tests.disk.loops import loop
from tests.factory import cached_disk_info
from core.repair import repair_disk, show_disk
from tests.factory import DiskInfo
from tests.ntfs3g import attached, partition_hashes, partitions
from tests.repair.repair_helpers import clean_system_hive, disk_copy

pytestmark = pytest.mark.root
VOLATILE = {"pagefile.sys", "hiberfil.sys"}
MiB = 1 << 20


def files(disk: Path) -> dict[int, dict[str, str]]:
    """File hashes, without what the boot repair may rewrite (the BCD, SYSTEM and their kept copies)."""
    def boot_file(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return base in VOLATILE or base.startswith(("BCD", "SYSTEM")) and "/" in name and \
            name.lower().split("/")[0] in ("boot", "efi", "windows")
    return {n: {k: v for k, v in h.items() if not boot_file(k)} for n, h in partition_hashes(disk).items()}


def clean_source(kind: str, tmp: Path) -> DiskInfo:
    """A factory disk whose SYSTEM hive is clean (the factory ships regipy's dirty sample)."""
    info = disk_copy(kind, tmp / "src.img", size=700 * MiB, hiberfil_magic=b"wake")
    clean_system_hive(info.path, info.part("windows"))
    # The factory's BCD and MountedDevices come from other machines; a real, bootable source names
    # its own partitions, so make it consistent first (what `rescue fix-boot` does).
    repair_disk(str(info.path), dry_run=False)
    boots(info.path)
    return info


def boots(target: Path) -> None:
    """Every BCD device and drive letter points at a partition of the target."""
    show = show_disk(str(target))
    assert show.all_resolve, show.as_json()


def check_disk(path: Path, scheme: str) -> list[dict]:
    parts = partitions(path)
    for p in parts:
        with open(path, "rb") as f:
            f.seek(p["offset"])
            boot = f.read(512)
        if boot[3:11] == b"NTFS    ":
            assert int.from_bytes(boot[0x1C:0x20], "little") == p["offset"] // 512, "hidden sectors"
            with attached(path, p["offset"], p["length"]) as dev:
                fix = subprocess.run(["ntfsfix", "-n", dev], capture_output=True, text=True)
                assert fix.returncode == 0, fix.stdout + fix.stderr
                info = subprocess.run(["ntfsresize", "--info", "--force", "--no-progress-bar", dev],
                                      capture_output=True, text=True)
                assert info.returncode == 0, info.stdout + info.stderr
    if scheme == "gpt":
        v = subprocess.run(["sgdisk", "-v", str(path)], capture_output=True, text=True)
        assert "No problems found" in v.stdout, v.stdout
    return parts


def new_disk(path: Path, size: int) -> Path:
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size // MiB * MiB)
    return path


@pytest.mark.parametrize("kind", ["mbr-small", "gpt-small"])
@pytest.mark.parametrize("factor", [1.5, 0.6])
def test_restore_onto_other_sizes(kind: str, factor: float, tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "ntfsresize", "sgdisk", "fusermount3")
    info = clean_source(kind, tmp_path)
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    target = new_disk(tmp_path / "t.img", int(info.size * factor))
    plan = plan_restore(str(folder), None, str(target), lambda: None, Progress())
    win = next(p for p in plan.partitions if p["role"] == "windows")
    assert win["action"] == ("grow" if factor > 1 else "shrink")
    assert all(p["new_start"] % MiB == 0 for p in plan.partitions)
    assert all(p["new_size"] == p["old_size"] for p in plan.partitions if p["role"] != "windows")
    result = execute_restore(plan, Progress())
    assert result.verified_bytes == result.written_bytes > 0
    assert result.boot_problems == []
    parts = check_disk(target, info.scheme)
    assert parts[-1]["offset"] + parts[-1]["length"] <= target.stat().st_size
    assert files(target) == files(info.path)
    boots(target)


def test_restore_moving_windows_repairs_boot(tmp_path: Path) -> None:
    """--grow 1 grows System Reserved, so C: moves: BCD devices and MountedDevices must follow it."""
    need_root_tools("ntfs-3g", "ntfsresize")
    info = clean_source("mbr-small", tmp_path)
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    target = new_disk(tmp_path / "t.img", int(info.size * 1.5))
    plan = plan_restore(str(folder), None, str(target), lambda: None, Progress(), grow=1)
    win = next(p for p in plan.partitions if p["role"] == "windows")
    assert win["new_start"] > win["old_start"]
    result = execute_restore(plan, Progress())
    assert result.boot_problems == []
    assert any(a.startswith(("boot repair: letters", "boot repair: bcd")) for a in result.actions), result.actions
    check_disk(target, "mbr")
    assert files(target) == files(info.path)
    boots(target)


def test_clone_system_partitions_onto_smaller_blank_disk(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "ntfsresize", "sgdisk", "fusermount3")
    info = clean_source("gpt-small", tmp_path)
    target = new_disk(tmp_path / "ssd.img", 420 * MiB)
    plan = plan_clone(str(info.path), str(target), Progress(), partitions="system", scratch=str(tmp_path))
    assert [p["role"] for p in plan.partitions] == ["esp", "msr", "windows"]
    result = execute_clone(plan, Progress())
    assert result.verified_bytes == result.written_bytes
    assert result.boot_problems == []
    check_disk(target, "gpt")
    assert files(target) == files(info.path)
    boots(target)
    t = json.loads(subprocess.run(["sfdisk", "--json", str(target)], capture_output=True, text=True,
                                  check=True).stdout)["partitiontable"]
    assert t["id"].lower() == info.disk_id  # the disk GUID is kept, so are the partition GUIDs
    assert [p["uuid"].lower() for p in t["partitions"]] == [p.guid for p in info.partitions]


def test_target_too_small_for_the_data_refused_with_numbers(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g")
    info = cached_disk_info("mbr-small", size=700 * MiB, hiberfil_magic=b"wake")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    target = new_disk(tmp_path / "t.img", 160 * MiB)
    target.write_bytes(b"\x33" * (160 * MiB))
    with pytest.raises(TargetRefused) as e:
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    assert "bytes" in e.value.message and "cannot shrink" in e.value.message
    assert target.read_bytes()[:1 << 20] == b"\x33" * (1 << 20)


def test_4kn_target_refused_for_windows_7(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "losetup")
    info = cached_disk_info("mbr-small", hiberfil_magic=b"wake")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    target = new_disk(tmp_path / "t.img", 512 * MiB)
    with loop(target, sector_size=4096) as dev:
        with pytest.raises(TargetRefused) as e:
            plan_restore(str(folder), None, dev, lambda: None, Progress())
        assert "sector" in e.value.message
