"""End to end on a factory-built Windows 7 BIOS/MBR disk: move C:, change the disk signature, then
`rescue bcd repair` + `rescue fix-boot` make every descriptor and drive letter resolve again.

Checked with independent readers: sfdisk (where partitions are), hivex (BCD and SYSTEM hives), raw
boot-sector bytes (hidden sectors), ntfsfix -n (volumes clean). The factory's BCD store and SYSTEM hive
name the disk as built (tests.win7_hives), so the tests first break that (C: moved, a new signature); one
test asks the factory for a dirty SYSTEM hive and checks the refusal.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from core.repair import repair_disk
from tests.conftest import need_root_tools
from tests.ntfs3g import mounted_ntfs, ntfsfix_clean
from tests.repair.repair_helpers import (MiB, SYSTEM, disk_copy, hidden_sectors, hive_key_values, hivex_bcd_devices,
                                         hivex_bcd_strings, move_partition, ntfs_backup_offset, read_ntfs_files,
                                         rescue, rescue_json, resolves, scan_partition_descriptors,
                                         set_mbr_signature, sfdisk_table, sha256_file)
from tests.win7_hives import BOOTMGR, CDROM, MEMDIAG

pytestmark = [pytest.mark.root, pytest.mark.slow]
NEW_SIG = 0x1234ABCD
SHIFT = 8 * MiB
SYSLINUX = Path("/usr/lib/syslinux/mbr/mbr.bin")


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root_tools("losetup", "ntfs-3g", "sfdisk", "ntfsfix", "hivexsh", "mcopy")


def _bcd(img: Path, p1_start: int, p1_size: int) -> dict[str, bytes]:
    return read_ntfs_files(img, p1_start, p1_size, "Boot")


def test_move_c_new_signature_then_repair(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake")
    img = info.path
    sr, c = info.part("system-reserved"), info.part("windows")
    # The disk as built is consistent: nothing to repair. Then break it by moving C:.
    rc, first = rescue_json("fix-boot", str(img), "--yes")
    assert rc == 0 and first["changes"] == [] and first["backups"] == [], first
    rc, shown = rescue_json("bcd", "show", str(img))
    assert rc == 0 and shown["all_resolve"], shown

    moved = move_partition(info, c.number, SHIFT, f"0x{NEW_SIG:08x}")
    c2 = moved.part("windows")
    assert c2.start == c.start + SHIFT
    rc, before = rescue_json("bcd", "show", str(img))
    assert rc == 0 and not before["all_resolve"]
    c_letter = next(x for x in before["letters"] if x["name"] == "\\DosDevices\\C:")
    assert not c_letter["resolves"]
    with img.open("rb") as f:
        assert f.read(440) == bytes(440)  # the fresh table has no boot code and no active partition

    # --dry-run writes nothing (hash of the whole disk file) but reports everything.
    digest = sha256_file(img)
    rc, dry = rescue_json("fix-boot", str(img), "--dry-run")
    assert rc == 0 and dry["dry_run"], dry
    assert sha256_file(img) == digest
    wheres = {ch["where"] for ch in dry["changes"]}
    assert {"MBR boot code", "MBR entry 1 status", "partition 2 NTFS boot sector hidden sectors",
            "partition 2 NTFS backup boot sector hidden sectors", "\\DosDevices\\C:"} <= wheres
    assert dry["backups"] == []

    # A destructive run without --yes and without a terminal is refused, nothing written.
    r = rescue("bcd", "repair", str(img))
    assert r.returncode == 3 and "confirmation" in r.stderr
    assert sha256_file(img) == digest

    rc, rep = rescue_json("bcd", "repair", str(img), "--yes")
    assert rc == 0, rep
    assert not [ch for ch in rep["changes"] if ch["area"] == "boot-record"]
    bcd_changes = [ch for ch in rep["changes"] if ch["area"] == "bcd"]
    assert bcd_changes and all(f"0x{NEW_SIG:08x}" in ch["new"] for ch in bcd_changes)
    by_where = {ch["where"]: ch for ch in rep["changes"]}
    assert by_where["\\DosDevices\\C:"]["new"] == f"MBR disk 0x{NEW_SIG:08x} offset {c2.start:#x}"
    assert any(b.startswith("partition 1:\\Boot\\BCD.rescue-bak-") for b in rep["backups"])
    assert any(b.startswith("partition 2:\\Windows\\System32\\config\\SYSTEM.rescue-bak-") for b in rep["backups"])
    human = rescue("bcd", "repair", str(img), "--yes")  # second run: nothing left to do, said in words
    assert human.returncode == 0 and "nothing to change" in human.stdout

    rc, fix = rescue_json("fix-boot", str(img), "--yes")
    assert rc == 0, fix
    assert {ch["where"] for ch in fix["changes"]} == {
        "MBR boot code", "MBR entry 1 status", "partition 2 NTFS boot sector hidden sectors",
        "partition 2 NTFS backup boot sector hidden sectors"}

    rc, after = rescue_json("bcd", "show", str(img))
    assert rc == 0 and after["all_resolve"], after
    assert all(x["resolves"] for x in after["letters"] if x["kind"] == "partition")

    # Independent checks: sfdisk for the table, hivex for the hives, raw bytes for the boot records.
    table = sfdisk_table(img)
    assert int(table["id"], 16) == NEW_SIG and table["starts"] == [sr.start, c2.start]
    boot = _bcd(img, sr.start, sr.size)
    devices = hivex_bcd_devices(boot["BCD"])
    descs = [d for data in devices.values() for d in scan_partition_descriptors(data)]
    assert descs and all(resolves(d, table) for d in descs), descs
    resume_guid = hivex_bcd_strings(boot["BCD"])[(BOOTMGR, "23000006")]
    memdiag = scan_partition_descriptors(devices[(MEMDIAG, "11000001")])
    resume = scan_partition_descriptors(devices[(resume_guid, "11000001")])
    assert memdiag == [("mbr", NEW_SIG, sr.start)] and resume == [("mbr", NEW_SIG, c2.start)]
    backups = [n for n in boot if n.startswith("BCD.rescue-bak-")]
    assert len(backups) == 1  # one per repair run that changed the store (bcd repair)

    with mounted_ntfs(img, c2.start, c2.size, readonly=True) as mnt:
        system = (mnt / SYSTEM).read_bytes()
    letters = hive_key_values(system, "MountedDevices")
    assert letters is not None
    assert letters["\\DosDevices\\C:"][1] == struct.pack("<IQ", NEW_SIG, c2.start)
    assert letters["\\DosDevices\\D:"][1] == CDROM.encode("utf-16-le")  # not ours: kept
    mbr_values = [d for _t, d in letters.values() if len(d) == 12]
    assert sorted(struct.unpack("<IQ", d) for d in mbr_values) == sorted(
        [(NEW_SIG, sr.start), (NEW_SIG, c2.start), (NEW_SIG, c2.start)])  # SR volume, C: and its twin

    assert hidden_sectors(img, c2.start) == c2.start // 512
    assert hidden_sectors(img, ntfs_backup_offset(img, c2.start)) == c2.start // 512
    assert hidden_sectors(img, sr.start) == sr.start // 512
    with img.open("rb") as f:
        sector0 = f.read(512)
    assert sector0[:440] == SYSLINUX.read_bytes()[:440]
    assert struct.unpack_from("<I", sector0, 440)[0] == NEW_SIG
    assert sector0[446] == 0x80 and sector0[462] == 0x00
    assert ntfsfix_clean(img, sr.start, sr.size) and ntfsfix_clean(img, c2.start, c2.size)


def test_dirty_system_hive_is_refused_and_reported(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake", dirty_system=True)
    c = info.part("windows")
    set_mbr_signature(info.path, NEW_SIG)  # the store and the letters now name a disk that is gone
    with mounted_ntfs(info.path, c.start, c.size, readonly=True) as mnt:
        before = (mnt / SYSTEM).read_bytes()
    rc, rep = rescue_json("fix-boot", str(info.path), "--yes")
    assert rc == 102, rep  # BootRepairWarning: done, but something left undone
    assert any("dirty" in p and "SYSTEM" in p for p in rep["problems"])
    assert [ch for ch in rep["changes"] if ch["area"] == "bcd"]  # the rest of the repair went on
    files = read_ntfs_files(info.path, c.start, c.size, "Windows/System32/config")
    assert files["SYSTEM"] == before
    assert not [n for n in files if n.startswith("SYSTEM.rescue-bak")]


def test_bitlocker_boot_sector_is_not_touched(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake")
    c = info.part("windows")
    with info.path.open("r+b") as f:  # make C: look BitLocker-encrypted, with a wrong hidden-sectors value
        f.seek(c.start + 3)
        f.write(b"-FVE-FS-")
        f.seek(c.start + 0x1C)
        f.write(struct.pack("<I", 63))
        f.seek(c.start)
        vbr = f.read(512)
    report = repair_disk(str(info.path), dry_run=False)
    assert any("BitLocker" in p and "partition 2" in p for p in report.problems)
    assert not [ch for ch in report.changes if ch.where.startswith("partition 2")]
    with info.path.open("rb") as f:
        f.seek(c.start)
        assert f.read(512) == vbr


def test_rebuild_from_template(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake")
    sr, c = info.part("system-reserved"), info.part("windows")
    old = _bcd(info.path, sr.start, sr.size)["BCD"]  # the rebuild starts from C:'s BCD-Template, not this
    rc, rep = rescue_json("bcd", "rebuild", str(info.path), "--yes")
    assert rc == 0, rep
    boot = _bcd(info.path, sr.start, sr.size)
    bak = [n for n in boot if n.startswith("BCD.rescue-bak-")]
    assert len(bak) == 1 and boot[bak[0]] == old
    sig = int(info.disk_id, 16)
    devices = hivex_bcd_devices(boot["BCD"])
    strings = hivex_bcd_strings(boot["BCD"])
    loader = strings[(BOOTMGR, "23000003")]
    assert loader != hivex_bcd_strings(old)[(BOOTMGR, "23000003")]  # a new loader object
    assert scan_partition_descriptors(devices[(BOOTMGR, "11000001")]) == [("mbr", sig, sr.start)]
    assert scan_partition_descriptors(devices[(loader, "11000001")]) == [("mbr", sig, c.start)]
    assert scan_partition_descriptors(devices[(loader, "21000001")]) == [("mbr", sig, c.start)]
    assert strings[(loader, "12000002")] == "\\Windows\\system32\\winload.exe"
    assert strings[(loader, "12000004")] == "Windows 7" and strings[(loader, "22000002")] == "\\Windows"
    rc, shown = rescue_json("bcd", "show", str(info.path))
    assert rc == 0
    devs = [d for o in shown["objects"] for e in o["elements"] for d in e["devices"]]
    assert devs and all(d["resolves"] and not d["note"] for d in devs), devs


def test_api_new_signature_on_block_device(tmp_path: Path) -> None:
    """What restore/clone call after laying out partitions: `repair_disk` with a new signature, here on a
    disk that is itself a block device (the whole image as a loop device; partitions are then reached
    with losetup offsets on it)."""
    from core.repair import show_disk
    from tests.ntfs3g import attached

    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake")
    sr, c = info.part("system-reserved"), info.part("windows")
    with attached(info.path, 0, info.size, readonly=False) as dev:
        dry = repair_disk(dev, dry_run=True, new_signature=0xCAFEF00D)
        assert sfdisk_table(info.path)["id"] == info.disk_id  # the dry run wrote nothing
        report = repair_disk(dev, dry_run=False, new_signature=0xCAFEF00D)
        assert [ch.where for ch in dry.changes] == [ch.where for ch in report.changes]
        assert report.ok, report.problems
        sig = next(ch for ch in report.changes if ch.where == "MBR disk signature")
        assert (sig.old, sig.new) == (info.disk_id, "0xcafef00d")
        letters = {ch.where: ch for ch in report.by_area("letters")}
        assert letters["\\DosDevices\\C:"].new == f"MBR disk 0xcafef00d offset {c.start:#x}"
        shown = show_disk(dev)
        assert shown.all_resolve and shown.disk_id == "0xcafef00d"
    assert int(sfdisk_table(info.path)["id"], 16) == 0xCAFEF00D
    assert ntfsfix_clean(info.path, sr.start, sr.size) and ntfsfix_clean(info.path, c.start, c.size)
