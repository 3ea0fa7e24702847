"""End to end on a factory-built Windows 7 UEFI/GPT disk: move C:, give the disk and every partition
new GUIDs, then `rescue bcd repair` + `rescue fix-boot` make every descriptor and the Windows drive
letter resolve again (the store on the FAT32 ESP is rewritten through mtools).

The factory's BCD store and SYSTEM hive name the disk as built (tests.win7_hives), and its C: is
hibernated (hiberfil.sys starts with "hibr"): the tests that need letters rewritten let ntfs-3g drop
hiberfil.sys first (repair_helpers.wake_up); one test keeps the hibernated C: and checks the refusal.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import need_root_tools
from tests.ntfs3g import attached, mounted_ntfs, ntfsfix_clean
from tests.repair.repair_helpers import (MiB, SYSTEM, disk_copy, fat_listing, hidden_sectors, hive_key_values,
                                         hivex_bcd_devices, hivex_bcd_strings, move_partition, ntfs_backup_offset,
                                         read_fat_file, rescue_json, resolves, scan_partition_descriptors,
                                         sfdisk_table, sha256_file, wake_up)
from tests.win7_hives import BOOTMGR

pytestmark = [pytest.mark.root, pytest.mark.slow]
SHIFT = 8 * MiB
EFI_BCD = "EFI/Microsoft/Boot/BCD"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root_tools("losetup", "ntfs-3g", "sfdisk", "sgdisk", "ntfsfix", "hivexsh", "mcopy")


def test_move_c_new_guids_then_repair(tmp_path: Path) -> None:
    info = disk_copy("gpt-small", tmp_path / "disk.img")
    esp, c = info.part("esp"), info.part("windows")
    wake_up(info.path, c)
    moved = move_partition(info, c.number, SHIFT, None)
    img = moved.path
    c2, esp2 = moved.part("windows"), moved.part("esp")
    assert c2.start == c.start + SHIFT and esp2.guid != esp.guid
    rc, before = rescue_json("bcd", "show", str(img))
    assert rc == 0 and not before["all_resolve"]
    old_store = read_fat_file(img, esp.start, EFI_BCD)

    digest = sha256_file(img)
    rc, dry = rescue_json("fix-boot", str(img), "--dry-run")
    assert rc == 0 and sha256_file(img) == digest, dry

    rc, rep = rescue_json("bcd", "repair", str(img), "--yes")
    assert rc == 0, rep
    by_where = {ch["where"]: ch for ch in rep["changes"]}
    assert by_where["{bootmgr} device (11000001)"]["partition"] == esp2.number
    assert by_where["\\DosDevices\\C:"]["new"] == f"GPT partition {{{c2.guid}}}"
    assert any(b.startswith("partition 1:\\EFI\\Microsoft\\Boot\\BCD.rescue-bak-") for b in rep["backups"])
    rc, fix = rescue_json("fix-boot", str(img), "--yes")
    assert rc == 0, fix
    assert {ch["where"] for ch in fix["changes"]} == {"partition 3 NTFS boot sector hidden sectors",
                                                      "partition 3 NTFS backup boot sector hidden sectors"}
    assert any("GPT disk" in n for n in fix["notes"])

    rc, after = rescue_json("bcd", "show", str(img))
    assert rc == 0 and after["all_resolve"], after
    c_letter = next(x for x in after["letters"] if x["name"] == "\\DosDevices\\C:")
    assert c_letter["resolves"] and c_letter["partition"] == c2.number

    table = sfdisk_table(img)
    store = read_fat_file(img, esp2.start, EFI_BCD)
    devices = hivex_bcd_devices(store)
    descs = [d for data in devices.values() for d in scan_partition_descriptors(data)]
    assert descs and all(resolves(d, table) for d in descs), descs
    assert scan_partition_descriptors(devices[(BOOTMGR, "11000001")]) == [("gpt", table["id"].lower(), esp2.guid)]
    baks = [n for n in fat_listing(img, esp2.start, "EFI/Microsoft/Boot") if n.startswith("BCD.rescue-bak-")]
    assert len(baks) == 1 and read_fat_file(img, esp2.start, f"EFI/Microsoft/Boot/{baks[0]}") == old_store
    assert not [n for n in fat_listing(img, esp2.start, "EFI/Microsoft/Boot") if "rescue-tmp" in n]

    with mounted_ntfs(img, c2.start, c2.size, readonly=True) as mnt:
        system = (mnt / SYSTEM).read_bytes()
    letters = hive_key_values(system, "MountedDevices")
    assert letters is not None
    assert letters["\\DosDevices\\C:"][1] == b"DMIO:ID:" + uuid.UUID(c2.guid).bytes_le
    assert hidden_sectors(img, c2.start) == c2.start // 512
    assert hidden_sectors(img, ntfs_backup_offset(img, c2.start)) == c2.start // 512
    assert hidden_sectors(img, esp2.start) == esp2.start // 512
    assert ntfsfix_clean(img, c2.start, c2.size)
    with attached(img, esp2.start, esp2.size) as dev:  # the ESP after mtools' writes: clean for fsck.fat
        fsck = subprocess.run(["fsck.vfat", "-n", dev], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_hibernated_windows_is_reported(tmp_path: Path) -> None:
    info = move_partition(disk_copy("gpt-small", tmp_path / "disk.img"), 3, SHIFT, None)  # new GUIDs: work to do
    c = info.part("windows")
    rc, rep = rescue_json("bcd", "repair", str(info.path), "--yes")
    assert rc == 102, rep
    assert any("hibernated" in p and "partition 3" in p for p in rep["problems"]), rep["problems"]
    assert [ch for ch in rep["changes"] if ch["area"] == "bcd"]  # the ESP store was still repaired
    with mounted_ntfs(info.path, c.start, c.size, readonly=True) as mnt:
        names = [p.name for p in (mnt / "Windows/System32/config").iterdir()]
    assert not [n for n in names if "rescue-bak" in n]


def test_rebuild_uefi_store_on_esp(tmp_path: Path) -> None:
    info = disk_copy("gpt-small", tmp_path / "disk.img")
    esp, c = info.part("esp"), info.part("windows")
    rc, rep = rescue_json("bcd", "rebuild", str(info.path), "--yes")  # from C:'s BCD-Template
    assert rc == 0, rep
    assert rep["firmware"] == "uefi" and rep["store"] == "partition 1:\\EFI\\Microsoft\\Boot\\BCD"
    store = read_fat_file(info.path, esp.start, EFI_BCD)
    devices, strings = hivex_bcd_devices(store), hivex_bcd_strings(store)
    loader = strings[(BOOTMGR, "23000003")]
    disk = info.disk_id.lower()
    assert scan_partition_descriptors(devices[(BOOTMGR, "11000001")]) == [("gpt", disk, esp.guid)]
    assert scan_partition_descriptors(devices[(loader, "21000001")]) == [("gpt", disk, c.guid)]
    assert strings[(loader, "12000002")] == "\\Windows\\system32\\winload.efi"
    assert strings[(BOOTMGR, "12000002")] == "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
    rc, shown = rescue_json("bcd", "show", str(info.path))
    devs = [d for o in shown["objects"] for e in o["elements"] for d in e["devices"]]
    assert rc == 0 and devs and all(d["resolves"] and not d["note"] for d in devs), devs
