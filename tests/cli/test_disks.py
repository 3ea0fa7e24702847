"""`rescue disks` shows what a person needs to pick a disk: bus, size, and each partition's filesystem,
label, size and free space, in lines that fit the rescue media's 80-column console."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import need_root_tools
from tests.disk.loops import loop
from tests.images import run_rescue, small_disk

MiB = 1 << 20


def blank(path: Path, size: int) -> Path:
    path.write_bytes(b"")
    os.truncate(path, size)
    return path


def disk_of(dev: str) -> dict:  # type: ignore[type-arg]
    r = run_rescue("disks", "--json")
    assert r.returncode == 0, r.stderr
    [d] = [d for d in json.loads(r.stdout) if d["name"] == dev]
    return d  # type: ignore[no-any-return]


def text_lines(dev: str) -> list[str]:
    r = run_rescue("disks")
    assert r.returncode == 0, r.stderr
    # paths are never cut (the tests' are long; the rescue media's, /mnt/..., are short)
    tmp = tempfile.gettempdir()
    assert all(len(line) <= 80 for line in r.stdout.splitlines() if tmp not in line), r.stdout
    lines = r.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(dev + " "))
    j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("/")), len(lines))
    return lines[i:j]


@pytest.mark.root
def test_partitions_show_filesystem_label_and_free_space(tmp_path: Path) -> None:
    need_root_tools("losetup", "sfdisk", "mkntfs", "mkfs.vfat", "mkfs.ext4", "blkid", "ntfs-3g")
    img = blank(tmp_path / "disk.img", 64 * MiB)
    subprocess.run(["sfdisk", "-q", str(img)], input="label: dos\n,16M,7\n,16M,6\n,16M,83\n", text=True,
                   check=True)
    for n, cmd in ((0, ["mkntfs", "-Fq", "-L", "WinData"]), (1, ["mkfs.vfat", "-n", "STICK"]),
                   (2, ["mkfs.ext4", "-q", "-L", "backups"])):
        with loop(img, offset=MiB + n * 16 * MiB, size=16 * MiB) as part:
            subprocess.run([*cmd, part], capture_output=True, check=True)
    with loop(img, offset=MiB, size=16 * MiB) as part:  # fill some of the NTFS: its free space shrinks
        mnt = tmp_path / "m"
        mnt.mkdir()
        subprocess.run(["ntfs-3g", part, str(mnt)], check=True)
        try:
            (mnt / "big").write_bytes(os.urandom(5 * MiB))
            ntfs_free = os.statvfs(mnt).f_bfree * os.statvfs(mnt).f_frsize
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    with loop(img) as dev:
        d = disk_of(dev)
        assert d["bus"] == "loop" and d["description"] == "disk image file, 67.1 MB", d
        ntfs, fat, ext4 = d["partitions"]
        assert (ntfs["fs"], ntfs["label"]) == ("ntfs", "WinData")
        # from $Bitmap, as ntfs-3g counts it (the volume's last partial cluster aside)
        assert abs(ntfs["free"] - ntfs_free) <= 64 * 1024, (ntfs["free"], ntfs_free)
        assert ntfs["free"] < 11 * MiB
        assert fat["fs"].startswith("fat") and fat["label"] == "STICK" and 14 * MiB < fat["free"] < 16 * MiB
        assert (ext4["fs"], ext4["label"], ext4["free"]) == ("ext4", "backups", None)  # unmounted: unknown
        lines = text_lines(dev)
        assert "disk image file, 67.1 MB  mbr" in lines[0], lines
        assert any("ntfs" in line and "'WinData'" in line and "MiB free" in line for line in lines), lines
        assert any("ext4" in line and "'backups'" in line and "? free" in line for line in lines), lines


@pytest.mark.root
def test_a_mounted_stick_without_partition_table(tmp_path: Path) -> None:
    need_root_tools("losetup", "mkfs.ext4", "blkid", "mount")
    img = blank(tmp_path / "stick.img", 32 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-L", "usbstick", str(img)], check=True)
    with loop(img) as dev:
        mnt = tmp_path / "m"
        mnt.mkdir()
        subprocess.run(["mount", dev, str(mnt)], check=True)
        try:
            r = run_rescue("backup", str(small_disk(tmp_path / "pc.img")), str(mnt / "pc1"))
            assert r.returncode == 0, r.stderr
            d = disk_of(dev)
            st = os.statvfs(mnt)
            lines = text_lines(dev)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
        assert d["table"] == "no partition table", d
        assert d["description"] == "disk image file, 33.6 MB, 1 backup", d
        [p] = d["partitions"]
        assert (p["number"], p["fs"], p["label"]) == (0, "ext4", "usbstick")
        assert p["mounted_at"] == str(mnt) and p["free"] == st.f_bavail * st.f_frsize
        assert p["backup_folders"] == [str(mnt / "pc1")]
        assert any(line.strip() == f"backups in {mnt / 'pc1'}" for line in lines), lines
