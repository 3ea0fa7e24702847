"""Pieces of the boot repair without a disk: MBR code recognition, the rebuilt store (every real store
as a template, read back by hivex), and `rescue bcd show` in words on factory disks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.bcd.device import GptPartitionId, MbrPartitionId, PartitionDevice, decode_element
from core.bcd.store import BcdStore
from core.regf.hive import Hive
from core.repair.bootrecords import SYSLINUX_MBR, WINDOWS_PREFIX, classify_mbr_code
from core.repair.rebuild import BOOTMGR, device_value, rebuild_store
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info
from tests.regf.regf_helpers import BCD_NAMES, bcd_fixture
from tests.repair.repair_helpers import (disk_copy, hivex_bcd_devices, hivex_bcd_strings, rescue,
                                         scan_partition_descriptors, set_mbr_signature)

BOOT = MbrPartitionId(0x0BADCAFE, 0x100000)
WIN = MbrPartitionId(0x0BADCAFE, 0x6500000)
GPT_BOOT = GptPartitionId("7b0d9c84-3c49-492b-b3fb-c17ab27d23ce", "6e1f8254-67a1-4478-b9df-4d62a699df10")
GPT_WIN = GptPartitionId("7b0d9c84-3c49-492b-b3fb-c17ab27d23ce", "e03110b5-81d3-44b6-b101-93cbb0b4c081")


def test_mbr_code_kinds() -> None:
    assert classify_mbr_code(bytes(440)) == "empty"
    assert classify_mbr_code(os.urandom(440)) == "unknown"
    nt6 = (WINDOWS_PREFIX + bytes(100) + b"f\x81\xfbTCPA").ljust(440, b"\x90")
    assert classify_mbr_code(nt6) == "Windows (NT 6)"
    nt5 = (WINDOWS_PREFIX + bytes(200) + b"Invalid partition table").ljust(440, b"\0")
    assert classify_mbr_code(nt5) == "Windows (NT 5)"
    if not SYSLINUX_MBR.exists():
        pytest.fail(f"{SYSLINUX_MBR} missing: scripts/setup.sh installs syslinux-common")
    assert classify_mbr_code(SYSLINUX_MBR.read_bytes()[:440]) == "syslinux"


@pytest.mark.parametrize("ident", [BOOT, GPT_WIN])
def test_device_value_roundtrip(ident: MbrPartitionId | GptPartitionId) -> None:
    raw = device_value(ident)
    assert len(raw) == 88  # 16-byte options GUID + 0x48-byte descriptor, as bcdedit writes it
    dev = decode_element(raw).device
    assert isinstance(dev, PartitionDevice) and dev.identity == ident


@pytest.mark.parametrize("name", BCD_NAMES)
@pytest.mark.parametrize("uefi", [False, True])
def test_rebuild_from_every_real_store(name: str, uefi: bool, tmp_path: Path) -> None:
    boot, win = (GPT_BOOT, GPT_WIN) if uefi else (BOOT, WIN)
    result = rebuild_store(bcd_fixture(name).read_bytes(), boot=boot, windows=win, uefi=uefi)
    store = BcdStore(Hive.from_bytes(result.data))
    assert store.object(result.loader) is not None and store.object(result.resume) is not None
    assert [o.guid for o in store.objects() if o.type == 0x10200003] == [result.loader]  # template's dropped
    devices, strings = hivex_bcd_devices(result.data), hivex_bcd_strings(result.data)
    mgr, loader = "{" + BOOTMGR + "}", "{" + result.loader + "}"
    expect = [("gpt", boot.disk_guid, boot.part_guid)] if uefi else [("mbr", boot.signature, boot.offset)]
    assert scan_partition_descriptors(devices[(mgr, "11000001")]) == expect
    want_win = [("gpt", win.disk_guid, win.part_guid)] if uefi else [("mbr", win.signature, win.offset)]
    for code in ("11000001", "21000001"):
        assert scan_partition_descriptors(devices[(loader, code)]) == want_win
    assert strings[(mgr, "23000003")] == loader
    assert strings[(loader, "12000002")] == "\\Windows\\system32\\winload." + ("efi" if uefi else "exe")
    assert strings[(loader, "12000004")] == "Windows 7"


@pytest.mark.root
def test_show_in_words_on_factory_disk(tmp_path: Path) -> None:
    need_root_tools("losetup", "ntfs-3g")
    info = cached_disk_info("mbr-small", hiberfil_magic=b"wake")  # shared: show only reads (ro mounts)
    before = info.path.stat().st_mtime_ns
    r = rescue("bcd", "show", str(info.path))
    assert r.returncode == 0, r.stderr
    assert "{memdiag}" in r.stdout and "'Windows 7'" in r.stdout
    assert "→ partition 1" in r.stdout and "→ partition 2" in r.stdout  # the disk as built: all resolves
    assert "every device and drive letter resolves" in r.stdout and "points nowhere" not in r.stdout
    assert "dirty" not in r.stderr
    assert info.path.stat().st_mtime_ns == before
    # A new disk signature and a dirty SYSTEM hive: every device points nowhere, the hive is said dirty.
    moved = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake", dirty_system=True)
    set_mbr_signature(moved.path, 0x0BADCAFE)
    r = rescue("bcd", "show", str(moved.path))
    assert r.returncode == 0, r.stderr
    assert "points nowhere" in r.stdout and "→ partition" not in r.stdout.split("store:")[1].split("[Windows")[0]
    assert "dirty" in r.stderr
