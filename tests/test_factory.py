"""Tests of the test-disk factory and the ntfs-3g helpers, checked against what the real tools report."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.bcd.device import GptPartitionId, MbrPartitionId
from core.regf.hive import Hive
from core.repair import show_disk
from tests import factory, win7_hives
from tests.conftest import need_root_tools
from tests.factory import DiskInfo, PartInfo
from tests.ntfs3g import (
    ToolError,
    attached,
    fat_file_hashes,
    fs_kind,
    mounted_ntfs,
    ntfsfix_clean,
    partition_hashes,
    run,
)

pytestmark = pytest.mark.root
TOOLS = ("sfdisk", "sgdisk", "mkntfs", "ntfs-3g", "ntfsinfo", "ntfscat", "ntfsfix", "ntfsresize", "losetup",
         "mkfs.vfat", "fsck.vfat", "mcopy", "mdir", "fusermount")
DATA_MB = 30


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def mbr_disk(tmp_path_factory: pytest.TempPathFactory) -> DiskInfo:
    need_root_tools(*TOOLS)
    return factory.build_win7_mbr(tmp_path_factory.mktemp("mbr") / "disk.img", data_mb=DATA_MB, seed=5)


@pytest.fixture(scope="module")
def gpt_disk(tmp_path_factory: pytest.TempPathFactory) -> DiskInfo:
    need_root_tools(*TOOLS)
    return factory.build_win7_gpt(tmp_path_factory.mktemp("gpt") / "disk.img", data_mb=DATA_MB, seed=6)


def read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def check_ntfs_volume(path: Path, p: PartInfo) -> None:
    """Boot sector fields Windows' boot chain depends on, the backup boot sector, label, consistency."""
    boot = read(path, p.start, 512)
    assert boot[3:11] == b"NTFS    " and boot[510:] == b"\x55\xaa"
    bps, spt, heads, hidden = struct.unpack_from("<H", boot, 0x0B)[0], *struct.unpack_from("<HHI", boot, 0x18)
    assert (bps, spt, heads) == (512, 63, 255)
    assert hidden == p.start // 512  # the VBR reads $Boot at hidden sectors + n
    total = struct.unpack_from("<Q", boot, 0x28)[0]
    assert total == p.size // 512 - 1
    assert read(path, p.start + total * 512, 512) == boot  # backup boot sector in the last sector
    with attached(path, p.start, p.size) as dev:
        assert f"Volume Name: {p.label}" in run(["ntfsinfo", "-m", dev])
    assert ntfsfix_clean(path, p.start, p.size)


def free_clusters_with_data(path: Path, p: PartInfo) -> int:
    """Clusters that $Bitmap marks free but that hold non-zero bytes (left by deleted files)."""
    with attached(path, p.start, p.size) as dev:
        bitmap = subprocess.run(["ntfscat", dev, "$Bitmap"], capture_output=True, check=True).stdout
    with path.open("rb") as f:
        f.seek(p.start)
        count = 0
        for lcn in range(p.size // 4096):
            block = f.read(4096)
            if not bitmap[lcn >> 3] >> (lcn & 7) & 1 and block.count(0) != len(block):
                count += 1
    return count


def ntfs_file_info(path: Path, p: PartInfo, rel: str) -> str:
    with attached(path, p.start, p.size) as dev:
        return run(["ntfsinfo", "-v", "-F", "/" + rel, dev])


def test_mbr_layout(mbr_disk: DiskInfo) -> None:
    table = json.loads(run(["sfdisk", "--json", str(mbr_disk.path)]))["partitiontable"]
    assert table["label"] == "dos" and table["id"] == mbr_disk.disk_id
    sr, c = table["partitions"]
    assert (sr["start"], sr["size"], sr["type"], sr.get("bootable")) == (2048, 204800, "7", True)
    assert (c["start"], c["type"], c.get("bootable", False)) == (206848, "7", False)
    assert c["start"] + c["size"] == mbr_disk.size // 512  # C: fills the disk
    assert mbr_disk.part("windows").size == c["size"] * 512
    mbr = read(mbr_disk.path, 0, 512)
    assert mbr[510:] == b"\x55\xaa" and struct.unpack_from("<I", mbr, 0x1B8)[0] == int(mbr_disk.disk_id, 16)
    if factory.MBR_CODE.exists():
        assert mbr[:440] == factory.MBR_CODE.read_bytes()[:440]


def test_mbr_volumes(mbr_disk: DiskInfo) -> None:
    for role, label in (("system-reserved", "System Reserved"), ("windows", "Windows 7")):
        p = mbr_disk.part(role)  # type: ignore[arg-type]
        assert p.label == label
        check_ntfs_volume(mbr_disk.path, p)


def test_mbr_files_round_trip(mbr_disk: DiskInfo) -> None:
    hashes = partition_hashes(mbr_disk.path)
    assert hashes == mbr_disk.manifest  # everything the factory wrote reads back identically
    sr, c = hashes[1], hashes[2]
    sig = int(mbr_disk.disk_id, 16)
    boot, win = (MbrPartitionId(sig, mbr_disk.part(r).start) for r in ("system-reserved", "windows"))
    assert sr["Boot/BCD"] == sha(win7_hives.bcd_store(boot, win, seed=5))  # names this disk's partitions
    assert "bootmgr" in sr and "Boot/en-US/bootmgr.exe.mui" in sr
    assert c["Windows/System32/config/SYSTEM"] == sha(win7_hives.system_hive(boot, win, seed=5))
    assert c["Windows/System32/config/BCD-Template"] == sha(win7_hives.bcd_template())
    for rel in ("Windows/System32/winload.exe", "Windows/System32/config/SOFTWARE", "pagefile.sys",
                "hiberfil.sys", "Users/Anna/Documents/Überweisung €.txt",
                "Users/Anna/Documents/emoji 😀 notes.txt",
                "Users/Anna/Downloads/setup.iso:Zone.Identifier", "Users/Anna/Downloads/fragmented.bin"):
        assert rel in c, rel
    assert c["Documents and Settings"] == "link:/Users" and c["Users/All Users"] == "link:/ProgramData"
    assert not any("~wrd" in rel or "~blk" in rel for rel in c)  # the garbage files are deleted
    assert sum(rel.startswith("Users/Anna/AppData/Local/Microsoft") for rel in c) >= 100  # many small files
    assert len([r for r in c if r.startswith("Windows/System32/") and r.endswith(".dll")]) >= 10


def test_mbr_windows_volume_details(mbr_disk: DiskInfo) -> None:
    c = mbr_disk.part("windows")
    frag = ntfs_file_info(mbr_disk.path, c, "Users/Anna/Downloads/fragmented.bin")
    runs = int(frag.split("Total runs:")[1].split()[0])
    assert runs >= 5, frag[-400:]
    assert "COMPRESSED" in ntfs_file_info(mbr_disk.path, c, "Windows/Logs/CBS/CBS.log")
    assert "SPARSE_FILE" in ntfs_file_info(mbr_disk.path, c, "Users/Anna/AppData/Local/Contoso/cache.db")
    assert "HIDDEN SYSTEM" in ntfs_file_info(mbr_disk.path, c, "pagefile.sys")
    # deleted files left garbage in free space (data_mb // 4 MiB of it, in 4 KiB clusters)
    assert free_clusters_with_data(mbr_disk.path, c) >= (DATA_MB // 4) * 256 * 9 // 10
    with attached(mbr_disk.path, c.start, c.size) as dev:
        head = subprocess.run(["ntfscat", dev, "hiberfil.sys"], capture_output=True, check=True).stdout[:4]
    assert head == b"hibr"


def test_hibernated_volume_refuses_rw_mount(mbr_disk: DiskInfo, tmp_path: Path) -> None:
    img = factory.copy_disk(mbr_disk.path, tmp_path / "copy.img")
    c = mbr_disk.part("windows")
    with pytest.raises(ToolError, match="read-only"):
        with mounted_ntfs(img, c.start, c.size, readonly=False):
            pass
    with mounted_ntfs(img, c.start, c.size, readonly=False, remove_hiberfile=True) as mnt:
        assert not (mnt / "hiberfil.sys").exists()
        (mnt / "new.txt").write_bytes(b"written")
    after = partition_hashes(img)[2]
    assert after["new.txt"] == sha(b"written")
    assert run(["losetup", "-j", str(img)]).strip() == ""  # nothing left attached


def test_helpers_clean_up_on_error(mbr_disk: DiskInfo) -> None:
    c = mbr_disk.part("windows")
    with pytest.raises(RuntimeError, match="boom"):
        with mounted_ntfs(mbr_disk.path, c.start, c.size) as mnt:
            assert (mnt / "Windows").is_dir()
            raise RuntimeError("boom")
    assert run(["losetup", "-j", str(mbr_disk.path)]).strip() == ""
    assert str(mnt) not in Path("/proc/self/mounts").read_text()
    assert not mnt.exists()


def test_gpt_layout(gpt_disk: DiskInfo) -> None:
    out = run(["sgdisk", "-v", str(gpt_disk.path)])
    assert "No problems found" in out
    table = json.loads(run(["sfdisk", "--json", str(gpt_disk.path)]))["partitiontable"]
    assert table["label"] == "gpt" and table["id"].lower() == gpt_disk.disk_id
    got = [(p["start"], p["size"], p["type"].lower(), p["uuid"].lower(), p["name"])
           for p in table["partitions"]]
    want = [(q.start // 512, q.size // 512, q.type_id, q.guid, q.name) for q in gpt_disk.partitions]
    assert got == want
    assert [q.role for q in gpt_disk.partitions] == ["esp", "msr", "windows"]
    assert got[0][:2] == (2048, 204800) and got[1][:2] == (206848, 262144)
    assert table["lastlba"] == got[2][0] + got[2][1] - 1  # C: runs to the last usable LBA
    assert read(gpt_disk.path, 0x1BE + 4, 1) == b"\xee"  # protective MBR
    msr = gpt_disk.part("msr")
    assert read(gpt_disk.path, msr.start, msr.size).count(0) == msr.size  # MSR left zeroed


def test_gpt_esp(gpt_disk: DiskInfo) -> None:
    esp = gpt_disk.part("esp")
    assert fs_kind(gpt_disk.path, esp.start) == "fat"
    boot = read(gpt_disk.path, esp.start, 512)
    assert boot[0x52:0x5A] == b"FAT32   " and struct.unpack_from("<I", boot, 0x1C)[0] == 2048
    files = fat_file_hashes(gpt_disk.path, esp.start)
    assert files == gpt_disk.manifest[1]
    esp_id, win_id = (GptPartitionId(gpt_disk.disk_id, gpt_disk.part(r).guid or "") for r in ("esp", "windows"))
    assert files["EFI/Microsoft/Boot/BCD"] == sha(win7_hives.bcd_store(esp_id, win_id, seed=6))
    assert files["EFI/Boot/bootx64.efi"] == files["EFI/Microsoft/Boot/bootmgfw.efi"]
    with attached(gpt_disk.path, esp.start, esp.size) as dev:  # fsck.fat has no offset option
        fsck = subprocess.run(["fsck.vfat", "-n", dev], capture_output=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_gpt_windows_volume(gpt_disk: DiskInfo) -> None:
    c = gpt_disk.part("windows")
    check_ntfs_volume(gpt_disk.path, c)
    hashes = partition_hashes(gpt_disk.path)
    assert sorted(hashes) == [1, 3]  # the MSR holds no filesystem
    assert hashes == gpt_disk.manifest
    assert "Windows/System32/winload.efi" in hashes[3] and "Windows/Boot/EFI/bootmgfw.efi" in hashes[3]


@pytest.mark.parametrize("which", ["mbr", "gpt"])
def test_boot_configuration_names_this_disk(which: str, mbr_disk: DiskInfo, gpt_disk: DiskInfo) -> None:
    """The store and the drive letters resolve on the disk as built, the hive is clean (nothing to repair)."""
    disk = mbr_disk if which == "mbr" else gpt_disk
    shown = show_disk(str(disk.path))
    assert shown.all_resolve, shown.as_json()
    assert not [p for p in shown.problems if "dirty" in p], shown.problems
    letters = {x["name"]: x for x in shown.letters}
    assert letters["\\DosDevices\\C:"]["partition"] == disk.part("windows").number


def test_dirty_system_hive(tmp_path: Path) -> None:
    need_root_tools(*TOOLS)
    info = factory.build_win7_mbr(tmp_path / "d.img", data_mb=6, pagefile_mb=1, hiberfil_mb=1, seed=9,
                                  dirty_system=True)
    c = info.part("windows")
    with mounted_ntfs(info.path, c.start, c.size) as mnt:
        hive = Hive.open(mnt / "Windows/System32/config/SYSTEM", allow_dirty=True)
    assert hive.dirty and hive.header.seq1 == hive.header.seq2 + 1  # as Windows leaves an unfinished write
    assert [x for x in show_disk(str(info.path)).problems if "dirty" in x]


def test_content_is_deterministic(tmp_path: Path) -> None:
    need_root_tools(*TOOLS)
    kw: dict[str, Any] = {"data_mb": 6, "pagefile_mb": 1, "hiberfil_mb": 1}
    a = factory.build_win7_mbr(tmp_path / "a.img", seed=9, **kw)
    b = factory.build_win7_mbr(tmp_path / "b.img", seed=9, **kw)
    c = factory.build_win7_mbr(tmp_path / "c.img", seed=10, **kw)
    assert a.manifest == b.manifest and a.disk_id == b.disk_id
    assert a.manifest[2]["Windows/System32/winload.exe"] != c.manifest[2]["Windows/System32/winload.exe"]
    assert a.disk_id != c.disk_id


def _cached(args: tuple[str, str]) -> str:
    import os

    os.environ["RESCUE_TEST_CACHE"] = args[0]
    return str(factory.cached_disk(args[1], data_mb=6, pagefile_mb=1, hiberfil_mb=1))


def test_cached_disk_builds_once_under_a_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_root_tools(*TOOLS)
    cache = tmp_path / "cache"
    # two processes ask at the same time: one builds, the other waits and gets the same image
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(_cached, [(str(cache), "gpt-tiny")] * 2)
    assert paths[0] == paths[1]
    images = list(cache.glob("*.img"))
    assert [str(p) for p in images] == [paths[0]] and not list(cache.glob("*.tmp*"))
    mtime = images[0].stat().st_mtime_ns
    monkeypatch.setenv("RESCUE_TEST_CACHE", str(cache))
    info = factory.cached_disk_info("gpt-tiny", data_mb=6, pagefile_mb=1, hiberfil_mb=1)
    assert info.path == images[0] and images[0].stat().st_mtime_ns == mtime  # not rebuilt
    assert info.scheme == "gpt" and info.part("esp").start == 1 << 20
    copy = factory.copy_disk(info.path, tmp_path / "copy.img")
    assert copy.stat().st_size == info.size
    assert copy.stat().st_blocks * 512 < info.size  # still sparse
