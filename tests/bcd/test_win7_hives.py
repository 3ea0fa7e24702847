"""The factory's sample hives (tests.win7_hives), made by our writer: consistent, read identically by hivex,
and holding what Windows 7 setup writes, with every partition reference naming the given disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.bcd.device import GptPartitionId, MbrPartitionId, PartitionId, decode_element
from core.bcd.mounteddevices import GptVolume, MbrVolume, OtherVolume, drive_letters, mounted_devices
from core.bcd.store import BcdStore, ElementValue, decode_element_value, encode_element_value
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.repair.rebuild import device_value, rebuild_store
from tests import win7_hives as w7
from tests.regf.regf_helpers import hivex_dump, our_dump

MBR = (MbrPartitionId(0x1234ABCD, 1 << 20), MbrPartitionId(0x1234ABCD, 101 << 20))
GPT = (GptPartitionId("9b1c1f40-4d1e-4c3a-9d55-0e7f4b3c2a11", "0d6b8f2e-1a7c-4e55-8d3b-6f1e2c4a5b70"),
       GptPartitionId("9b1c1f40-4d1e-4c3a-9d55-0e7f4b3c2a11", "6a2f4c1d-8e3b-4f7a-9c5d-2b1e0f3a4c68"))


def _same_for_hivex(data: bytes, tmp: Path) -> Hive:
    p = tmp / "hive"
    p.write_bytes(data)
    hive = Hive.open(p)
    assert check_hive(hive) == [] and not hive.dirty
    assert hivex_dump(p) == our_dump(hive)
    return hive


def _devices(store: BcdStore, ident: str, code: int) -> PartitionId | None:
    obj = store.object(ident)
    assert obj is not None, ident
    el = obj.element(code)
    assert el is not None, (ident, hex(code))
    dev = decode_element(el.raw).device
    return getattr(dev, "identity", None)


@pytest.mark.parametrize("ids", [MBR, GPT], ids=["bios", "uefi"])
def test_store_as_setup_writes_it(ids: tuple[PartitionId, PartitionId], tmp_path: Path) -> None:
    boot, win = ids
    uefi = isinstance(boot, GptPartitionId)
    data = w7.bcd_store(boot, win, seed=7)
    assert data == w7.bcd_store(boot, win, seed=7)  # reproducible bytes
    hive = _same_for_hivex(data, tmp_path)
    assert hive.key("Description").value("KeyName").value == "BCD00000000"  # type: ignore[union-attr]
    store = BcdStore(hive)
    names = {o.alias or o.type_name for o in store.objects()}
    assert names == {"{bootmgr}", "{memdiag}", "{globalsettings}", "{dbgsettings}", "{emssettings}",
                     "{badmemory}", "{bootloadersettings}", "{hypervisorsettings}", "{resumeloadersettings}",
                     "Windows boot loader", "resume from hibernate", *(["{fwbootmgr}"] if uefi else [])}
    mgr = store.object("{bootmgr}")
    assert mgr is not None
    loader, resume = (mgr.element(c).value for c in (0x23000003, 0x23000006))  # type: ignore[union-attr]
    assert isinstance(loader, str) and isinstance(resume, str)
    assert _devices(store, "{bootmgr}", 0x11000001) == boot and _devices(store, "{memdiag}", 0x11000001) == boot
    for obj, code in ((loader, 0x11000001), (loader, 0x21000001), (resume, 0x11000001), (resume, 0x21000001)):
        assert _devices(store, obj, code) == win
    lo = store.object(loader)
    assert lo is not None
    winload = "\\Windows\\system32\\winload." + ("efi" if uefi else "exe")
    assert lo.element(0x12000002).value == winload  # type: ignore[union-attr]
    assert lo.element(0x23000003).value == resume  # type: ignore[union-attr]


def test_template_rebuilds_into_a_store(tmp_path: Path) -> None:
    template = _same_for_hivex(w7.bcd_template(), tmp_path)
    assert {o.type for o in BcdStore(template).objects()}.isdisjoint({0x10200003, 0x10200004})  # no loader
    result = rebuild_store(w7.bcd_template(), boot=MBR[0], windows=MBR[1], uefi=False)
    store = BcdStore(Hive.from_bytes(result.data))
    assert result.dropped == [] and _devices(store, "{bootmgr}", 0x11000001) == MBR[0]
    assert _devices(store, result.loader, 0x21000001) == MBR[1]


@pytest.mark.parametrize("ids", [MBR, GPT], ids=["mbr", "gpt"])
def test_system_hive(ids: tuple[PartitionId, PartitionId], tmp_path: Path) -> None:
    boot, win = ids
    hive = _same_for_hivex(w7.system_hive(boot, win, seed=7), tmp_path)
    select = {v.name: v.value for v in hive.key("Select").values()}
    assert select == {"Current": 1, "Default": 1, "Failed": 0, "LastKnownGood": 2}
    for cs in ("ControlSet001", "ControlSet002"):
        name = hive.key(f"{cs}\\Control\\ComputerName\\ComputerName").value("ComputerName")
        assert name is not None and name.value == "WIN7-PC"
        atapi = {v.name: v.value for v in hive.key(f"{cs}\\Services\\atapi").values()}
        assert (atapi["Start"], atapi["Type"], atapi["ImagePath"]) == (0, 1, "system32\\drivers\\atapi.sys")
        channel = hive.key(f"{cs}\\Control\\CriticalDeviceDatabase\\Internal_IDE_Channel")
        assert channel.value("Service").value == "atapi"  # type: ignore[union-attr]
    want = MbrVolume(win.signature, win.offset) if isinstance(win, MbrPartitionId) else GptVolume(win.part_guid)
    letters = drive_letters(hive)
    assert letters["C"] == want and isinstance(letters["D"], OtherVolume)
    assert list(mounted_devices(hive).values()).count(want) == 2  # C: and its volume GUID name
    ahci = Hive.from_bytes(w7.system_hive(boot, win, seed=7, controller="ahci"))
    assert ahci.key("ControlSet001\\Services\\msahci").value("Start").value == 0  # type: ignore[union-attr]
    dirty = Hive.from_bytes(w7.system_hive(boot, win, seed=7, dirty=True), allow_dirty=True)
    assert dirty.dirty and dirty.header.seq1 == dirty.header.seq2 + 1


@pytest.mark.parametrize("code,value", [
    (0x12000004, "Windows 7"), (0x23000003, "{b2721d73-1db4-4c62-bf78-c548a880142d}"),
    (0x14000006, ["{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}"]), (0x25000004, 30), (0x16000020, False),
    (0x17000077, [0x15000075]), (0x11000001, device_value(MBR[0]))])
def test_element_value_round_trip(code: int, value: ElementValue) -> None:
    reg_type, raw = encode_element_value(code, value)
    back = decode_element_value(code, reg_type, raw)
    assert encode_element_value(code, back) == (reg_type, raw)
    if code != 0x11000001:
        assert back == value
