"""Device element codec: byte-exact round trip of every device element of every sample store, decoded
fields checked against the samples' known identities (BOOT.md §8.4; README "Real Windows samples"), fuzz."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.bcd.device import (BootDevice, DeviceElement, FileDevice, GptPartitionId, LocateDevice, MbrPartitionId,
                             PartitionDevice, RamdiskDevice, RawDescriptor, VhdDevice, decode_descriptor,
                             decode_element, encode_descriptor, encode_element, iter_descriptors, partitions,
                             rewrite_raw_partitions)
from core.bcd.elements import ElementFormat, element_format
from core.errors import FormatError
from core.regf.hive import Hive
from tests.regf.regf_helpers import BCD_NAMES, bcd_fixture

SIG_BCDTEST = 0x36234DA4


def device_elements(name: str) -> list[tuple[str, int, bytes]]:
    """(object key, element type, raw) of every device-format element, found by the type bits."""
    hive = Hive.open(bcd_fixture(name))
    out = []
    for key in hive.walk():
        parts = key.path.split("\\")
        if len(parts) == 4 and parts[2] == "Elements" and element_format(int(parts[3], 16)) == ElementFormat.DEVICE:
            v = key.value("Element")
            assert v is not None
            out.append((parts[1], int(parts[3], 16), v.data))
    return out


ALL_ELEMENTS = [(n, obj, code, raw) for n in BCD_NAMES for obj, code, raw in device_elements(n)]


@pytest.mark.parametrize("name,obj,code,raw", ALL_ELEMENTS, ids=[f"{n}-{o[1:9]}-{c:08x}" for n, o, c, _ in ALL_ELEMENTS])
def test_round_trip_is_byte_exact(name: str, obj: str, code: int, raw: bytes) -> None:
    e = decode_element(raw)
    assert encode_element(e) == raw
    # Every kind in the samples is understood structurally (no raw fallback needed).
    assert not any(isinstance(d, RawDescriptor) for d in iter_descriptors(e.device))


def test_every_sample_kind_is_covered() -> None:
    kinds = {type(d).__name__ for _, _, _, raw in ALL_ELEMENTS for d in iter_descriptors(decode_element(raw).device)}
    assert kinds == {"BootDevice", "PartitionDevice", "LocateDevice", "RamdiskDevice", "FileDevice", "VhdDevice"}
    assert len(ALL_ELEMENTS) == 27


def _element(name: str, obj_prefix: str, code: int) -> DeviceElement:
    for obj, c, raw in device_elements(name):
        if obj.startswith("{" + obj_prefix) and c == code:
            return decode_element(raw)
    raise AssertionError(f"{name}: no element {code:08x} in {obj_prefix}")


def test_mbr_partition() -> None:
    e = _element("pybcd_BCDTest", "33238d8c", 0x11000001)
    assert isinstance(e.device, PartitionDevice)
    assert e.device.identity == MbrPartitionId(SIG_BCDTEST, 0xB13300000)
    assert e.options_guid is None
    e = _element("windeploy-linux_BCD", "b2721d73", 0x11000001)  # {memdiag}
    assert partitions(e) == [MbrPartitionId(0xDDBA6BBB, 0x100000)]


def test_gpt_partition() -> None:
    e = _element("windeploy-linux_BCD-efi", "9dea862c", 0x11000001)  # {bootmgr} on the ESP
    assert partitions(e) == [GptPartitionId("20ac3077-f7cd-4c47-95d5-53fbf8b752b5", "85c434af-7860-49b3-85c3-b70316081b7b")]


def test_boot_and_locate() -> None:
    assert isinstance(_element("windeploy-linux_BCD", "9dea862c", 0x11000001).device, BootDevice)
    loc = _element("windeploy-linux_BCD-efi", "d65367c7", 0x21000001).device
    assert isinstance(loc, LocateDevice) and loc.element == 0x22000002 and loc.parent is None and loc.path == ""


def test_nested_devices() -> None:
    ram = _element("pybcd_BCDTest", "effdfa6e", 0x21000001)
    assert ram.options_guid == "ae5534e0-a924-466c-b836-758539a3ee3a"  # {ramdiskoptions}
    assert isinstance(ram.device, RamdiskDevice) and ram.device.file.path == "\\boot\\boot.wimaoeu"
    assert partitions(ram) == [MbrPartitionId(SIG_BCDTEST, 0x100000)]
    f = _element("pybcd_BCDTest", "d99dfa6e", 0x11000001).device
    assert isinstance(f, FileDevice) and f.file.path == "\\Workspace\\metadeploy\\boot.wim"
    assert isinstance(f.file.device, BootDevice)
    vhd = _element("pybcd_BCDTest", "fffdfa6e", 0x21000001).device
    chain = [type(d) for d in iter_descriptors(vhd)]
    assert chain == [LocateDevice, VhdDevice, FileDevice, PartitionDevice]
    assert isinstance(vhd, LocateDevice) and vhd.element == 0x12345678
    inner_file = vhd.parent.inner  # type: ignore[union-attr]
    assert isinstance(inner_file, FileDevice) and inner_file.file.path == "\\test.vhd"


def test_identity_conversion_round_trip() -> None:
    e = _element("pybcd_BCDTest", "33238d8c", 0x11000001)
    assert isinstance(e.device, PartitionDevice)
    gpt = GptPartitionId(str(uuid.uuid4()), str(uuid.uuid4()))
    as_gpt = e.device.with_identity(gpt)
    assert as_gpt.identity == gpt and as_gpt.style == 0
    back = as_gpt.with_identity(MbrPartitionId(SIG_BCDTEST, 0xB13300000))
    assert encode_descriptor(back) == encode_descriptor(e.device)
    raw = encode_descriptor(back)
    assert raw[0x10:0x18] == struct.pack("<Q", 0xB13300000) and raw[0x28:0x2C] == struct.pack("<I", SIG_BCDTEST)


def test_raw_descriptor_scan() -> None:
    """A partition descriptor inside bytes we cannot decode is still found and patched (exact match only)."""
    part = encode_descriptor(_element("pybcd_BCDTest", "33238d8c", 0x11000001).device)
    blob = struct.pack("<IIII", 0x77, 0, 16 + 8 + len(part), 0) + b"\x01" * 8 + part
    d = decode_descriptor(blob)
    assert isinstance(d, RawDescriptor)
    old = MbrPartitionId(SIG_BCDTEST, 0xB13300000)
    new = MbrPartitionId(0x01020304, 0x200000)
    patched, hits = rewrite_raw_partitions(blob, {old: new})
    assert hits == [(old, new)] and len(patched) == len(blob)
    assert rewrite_raw_partitions(blob, {MbrPartitionId(1, 2): new}) == (blob, [])
    assert partitions(DeviceElement(bytes(16), RawDescriptor(patched))) == [new]


def test_short_element_is_format_error() -> None:
    with pytest.raises(FormatError):
        decode_element(b"\0" * 31)


FUZZ = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(min_size=32, max_size=400))
def test_fuzz_random_blobs(raw: bytes) -> None:
    assert encode_element(decode_element(raw)) == raw


@FUZZ
@given(st.sampled_from([raw for *_, raw in ALL_ELEMENTS]), st.data())
def test_fuzz_mutated_samples(raw: bytes, data: st.DataObject) -> None:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.sampled_from([0, 1, 5, 6, 8, 0x10, 0x1E, 0x48, 0xFF]))
    cut = data.draw(st.integers(32, len(buf)))
    blob = bytes(buf[:cut])
    e = decode_element(blob)
    assert encode_element(e) == blob
    partitions(e)
    rewrite_raw_partitions(blob, {MbrPartitionId(SIG_BCDTEST, 0x100000): MbrPartitionId(1, 2)})
