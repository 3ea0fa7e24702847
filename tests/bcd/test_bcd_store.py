"""BCD store model and device rewrite, cross-checked with hivex on the written stores."""

from __future__ import annotations

import shutil
import struct
import uuid
from pathlib import Path

import pytest

from core.bcd.device import GptPartitionId, MbrPartitionId, decode_element, partitions
from core.bcd.elements import element_name
from core.bcd.store import BcdStore
from core.errors import FormatError, UnsupportedError, UsageError
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.values import RegType
from tests.regf.regf_helpers import BCD_NAMES, bcd_fixture, hivex_dump, our_dump, system_hive

SIG = 0x36234DA4


def _copy(name: str, tmp: Path) -> Path:
    p = tmp / name
    shutil.copyfile(bcd_fixture(name), p)
    return p


@pytest.mark.parametrize("name", BCD_NAMES)
def test_objects_match_hivex(name: str) -> None:
    store = BcdStore.open(bcd_fixture(name))
    guids = {o.guid for o in store.objects()}
    hx = {p.split("\\")[1].strip("{}").lower() for p, _ in hivex_dump(bcd_fixture(name)) if p.count("\\") == 1 and p.startswith("Objects\\")}
    assert guids == hx
    for o in store.objects():
        assert o.type is not None
        for e in o.elements():
            e.value  # every element decodes without error


def test_bootmgr_and_element_values() -> None:
    store = BcdStore.open(bcd_fixture("pybcd_BCD2"))
    bm = store.object("{bootmgr}")
    assert bm is not None and bm.guid == "9dea862c-5cdd-4e70-acc1-f32b344d4795" and bm.alias == "{bootmgr}"
    assert bm.type == 0x10100002 and bm.type_name == "Windows boot manager"
    names = {e.name: e.value for e in bm.elements()}
    assert names["timeout"] == 30
    assert names["default"] == "{3fdd12e2-432f-dcda-3249-2134abcdef13}"
    assert names["displayorder"] == ["{3fdd12e2-432f-dcda-3249-2134abcdef13}"]
    assert names["path"] == "\\EFI\\Microsoft\\Boot\\bootmgw.efi"  # sic, as in the sample
    loader = store.object("3fdd12e2-432f-dcda-3249-2134abcdef13")
    assert loader is not None and loader.type_name == "Windows boot loader"
    lnames = {e.name: e.value for e in loader.elements()}
    assert lnames["systemroot"] == "\\Windows" and lnames["bootmenupolicy"] == 1 and lnames["recoveryenabled"] is False
    assert lnames["allowedinmemorysettings"] == [0x15000075]
    assert "osdevice" in lnames and "device" in lnames


def test_element_names_depend_on_object_type() -> None:
    assert element_name(0x23000003, 0x10100002) == "default"
    assert element_name(0x23000003, 0x10200003) == "resumeobject"
    assert element_name(0x21000001, 0x10200004) == "filedevice"
    assert element_name(0x21000001, 0x10200003) == "osdevice"
    assert element_name(0x11000001) == "device"
    assert element_name(0x12345678) == "custom:12345678"


def test_custom_element_kept() -> None:
    store = BcdStore.open(bcd_fixture("pybcd_BCDTest"))
    o = store.object("{fffdfa6e-8442-22f3-b2d5-323c2953814f}")
    assert o is not None
    e = o.element(0x12345678)
    assert e is not None and e.name == "custom:12345678" and e.value == "\\hello\\test.boot"


def test_rewrite_mbr_everywhere(tmp_path: Path) -> None:
    p = _copy("pybcd_BCDTest", tmp_path)
    before = p.read_bytes()
    original = {path: vals for path, vals in hivex_dump(p)}
    old, new = MbrPartitionId(SIG, 0x100000), MbrPartitionId(0xCAFEBABE, 0x7E00000)
    store = BcdStore.open(p)
    changes = store.rewrite_devices({old: new})
    # osdevice of a plain loader, of a file device, of a ramdisk and of a locate->vhd->file chain
    assert sorted((c.object_guid[:8], c.element_name) for c in changes) == [
        ("150e57bb", "osdevice"), ("d99dfa6e", "osdevice"), ("effdfa6e", "osdevice"), ("fffdfa6e", "osdevice")]
    assert all(c.old == old and c.new == new for c in changes)
    store.save(p)
    after = p.read_bytes()
    assert len(after) == len(before)  # same-size patches: no new cells, no growth
    written = {path: vals for path, vals in hivex_dump(p)}
    assert written.keys() == original.keys()
    changed = [path for path in original if original[path] != written[path]]
    assert sorted(path.split("\\")[1][1:9] for path in changed) == ["150e57bb", "d99dfa6e", "effdfa6e", "fffdfa6e"]
    for path in changed:
        raw = bytes.fromhex(written[path][0][2])
        assert partitions(decode_element(raw)) == [new]
        assert struct.pack("<I", 0xCAFEBABE) in raw and struct.pack("<Q", 0x7E00000) in raw
    # the other MBR partition (offset 0xB13300000) and the GPT device are untouched
    reread = BcdStore.open(p)
    other = reread.object("33238d8c-8333-11e3-a0d2-000c2994873a").element(0x11000001)  # type: ignore[union-attr]
    assert partitions(other.value) == [MbrPartitionId(SIG, 0xB13300000)]  # type: ignore[union-attr, arg-type]
    assert check_hive(reread.hive) == []
    assert BcdStore.open(p).rewrite_devices({old: new}) == []  # nothing left to change


def test_rewrite_gpt(tmp_path: Path) -> None:
    p = _copy("pybcd_BCD2", tmp_path)
    disk = "00673c7f-74ac-4730-a318-504c9c85c721"
    esp = GptPartitionId(disk, "920f5c9f-b6c6-4559-9a3e-4e05da421ab1")
    new_disk = str(uuid.uuid4())
    new_esp = GptPartitionId(new_disk, str(uuid.uuid4()))
    os_part = GptPartitionId(disk, "aa622b43-45a2-4b6d-88e5-d737548f5792")
    new_os = GptPartitionId(new_disk, str(uuid.uuid4()))
    store = BcdStore.open(p)
    changes = store.rewrite_devices({esp: new_esp, os_part: new_os})
    assert sorted((c.object_alias or c.object_guid[:8], c.element_name) for c in changes) == [
        ("3fdd12e2", "device"), ("3fdd12e2", "osdevice"), ("{bootmgr}", "device"), ("{memdiag}", "device")]
    store.save(p)
    dump = our_dump(Hive.open(p))
    assert dump == hivex_dump(p)
    found = {str(x) for path, vals in dump if path.endswith(("11000001", "21000001"))
             for x in partitions(decode_element(bytes.fromhex(vals[0][2])))}
    assert found == {str(new_esp), str(new_os)}


def test_mbr_to_gpt_conversion(tmp_path: Path) -> None:
    p = _copy("windeploy-linux_BCD", tmp_path)
    new = GptPartitionId(str(uuid.uuid4()), str(uuid.uuid4()))
    store = BcdStore.open(p)
    changes = store.rewrite_devices({MbrPartitionId(0xDDBA6BBB, 0x100000): new})
    assert len(changes) == 2  # resume object and {memdiag}
    store.save(p)
    memdiag = BcdStore.open(p).object("{memdiag}").element(0x11000001)  # type: ignore[union-attr]
    assert partitions(memdiag.value) == [new]  # type: ignore[union-attr, arg-type]
    assert memdiag.raw[0x34:0x38] == b"\0\0\0\0"  # style 0 = GPT  # type: ignore[union-attr]


def test_set_element_and_hivex(tmp_path: Path) -> None:
    p = _copy("windeploy-linux_BCD-efi", tmp_path)
    store = BcdStore.open(p)
    bm = store.object("{bootmgr}")
    assert bm is not None
    store.set_element(bm, 0x16000049, RegType.BINARY, b"\x01")  # testsigning on {bootmgr}
    store.set_element(bm, 0x25000004, RegType.BINARY, struct.pack("<Q", 5))  # timeout, existing key
    store.save(p)
    dump = dict((path, vals) for path, vals in hivex_dump(p))
    assert dump["Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements\\16000049"] == [["Element", 3, "01"]]
    assert dump["Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements\\25000004"] == [["Element", 3, "0500000000000000"]]
    bm2 = BcdStore.open(p).object("{bootmgr}")
    assert bm2 is not None and {e.name: e.value for e in bm2.elements()}["timeout"] == 5


def test_bad_mapping_and_not_a_store(tmp_path: Path) -> None:
    store = BcdStore.open(bcd_fixture("pybcd_BCDTest"))
    with pytest.raises(UsageError):
        store.rewrite_devices({(1, 2): MbrPartitionId(1, 2)})  # type: ignore[dict-item]
    sysp = system_hive(tmp_path)
    with pytest.raises(FormatError, match="not a BCD store"):
        BcdStore(Hive.open(sysp, allow_dirty=True))


def test_dirty_store_refuses_rewrite(tmp_path: Path) -> None:
    p = _copy("pybcd_BCDTest", tmp_path)
    data = bytearray(p.read_bytes())
    struct.pack_into("<I", data, 8, 1)  # seq2 != seq1: dirty
    p.write_bytes(bytes(data))
    with pytest.raises(UnsupportedError):
        BcdStore.open(p)
    store = BcdStore.open(p, allow_dirty=True)
    with pytest.raises(UnsupportedError, match="refusing to write"):
        store.rewrite_devices({MbrPartitionId(SIG, 0x100000): MbrPartitionId(1, 2)})
    assert p.read_bytes() == bytes(data)
