"""regf reader: every fixture read identically to hivex; dirty hives refused; checksum edge cases."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from core.errors import FormatError, UnsupportedError
from core.regf.c_regf import BASE_BLOCK_SIZE, base_block_checksum
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.values import RegType, decode_value
from core.regf.writer import HiveWriter
from tests.regf.regf_helpers import BCD_NAMES, bcd_fixture, hivex_dump, make_clean, our_dump, system_hive


@pytest.fixture(scope="module")
def system_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return system_hive(tmp_path_factory.mktemp("system"))


@pytest.mark.parametrize("name", BCD_NAMES)
def test_bcd_fixture_reads_like_hivex(name: str) -> None:
    path = bcd_fixture(name)
    hive = Hive.open(path)
    assert not hive.dirty and hive.header.minor == 3
    dump = our_dump(hive)
    assert dump == hivex_dump(path)
    assert any(p.startswith("Objects\\") for p, _ in dump)
    assert check_hive(hive) == []  # Windows' own hives satisfy the invariants our writer keeps


@pytest.mark.slow
def test_system_hive_reads_like_hivex(system_path: Path) -> None:
    hive = Hive.open(system_path, allow_dirty=True)
    assert hive.dirty and hive.read_only
    dump = our_dump(hive)
    assert len(dump) > 20000
    assert dump == hivex_dump(system_path)
    # The sample holds big-data (db) values, lh and ri lists: all compared above.
    big = [v for k in hive.walk() for v in k.values() if hive.is_big_data(v.vk)]
    assert big and all(len(v.data) > 16344 for v in big)


def test_lookup_agrees_with_hivexget(system_path: Path) -> None:
    hive = Hive.open(system_path, allow_dirty=True)
    select = hive.key("select")  # case-insensitive, like Windows
    current = select.value("CURRENT")
    assert current is not None and current.type == RegType.DWORD
    out = subprocess.run(["hivexget", str(system_path), "\\Select", "Current"], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert current.value == int(out)
    assert hive.find("No\\Such\\Key") is None
    with pytest.raises(FormatError):
        hive.key("No\\Such\\Key")


def test_dirty_hive_is_refused(system_path: Path) -> None:
    with pytest.raises(UnsupportedError, match=r"dirty \(sequence numbers 205 != 204\).*LOG1"):
        Hive.open(system_path)
    hive = Hive.open(system_path, allow_dirty=True)
    with pytest.raises(UnsupportedError, match="refusing to write"):
        HiveWriter(hive)


def test_clean_copy_is_accepted(tmp_path: Path, system_path: Path) -> None:
    p = tmp_path / "SYSTEM"
    p.write_bytes(system_path.read_bytes())
    make_clean(p)  # test-only: seq2 = seq1 and checksum fixed (drops what logs would hold)
    hive = Hive.open(p)
    assert (hive.header.seq1, hive.header.seq2) == (205, 205) and hive.header.checksum_ok


def test_bad_checksum_is_dirty(tmp_path: Path) -> None:
    data = bytearray(bcd_fixture("pybcd_BCDTest").read_bytes())
    data[508] ^= 1
    with pytest.raises(UnsupportedError, match="checksum"):
        Hive.from_bytes(bytes(data))
    assert Hive.from_bytes(bytes(data), allow_dirty=True).dirty_reason == "base block checksum is wrong"


def test_checksum_edge_cases() -> None:
    block = bytearray(512)
    assert base_block_checksum(block) == 1  # XOR 0 is stored as 1
    struct.pack_into("<I", block, 40, 0xFFFFFFFF)
    assert base_block_checksum(block) == 0xFFFFFFFE  # XOR 0xFFFFFFFF is stored as 0xFFFFFFFE
    struct.pack_into("<I", block, 508, 0x12345678)  # the checksum field itself is not covered
    assert base_block_checksum(block) == 0xFFFFFFFE


def test_real_hive_with_zero_xor_is_clean() -> None:
    """A hive whose XOR is 0 must carry checksum 1 and then opens as clean."""
    data = bytearray(bcd_fixture("pybcd_BCD2").read_bytes())
    struct.pack_into("<I", data, 112, 0)  # a reserved word, then force the XOR to 0 with it
    x = 0
    for (w,) in struct.iter_unpack("<I", bytes(data[:508])):
        x ^= w
    struct.pack_into("<I", data, 112, x)
    struct.pack_into("<I", data, 508, 1)
    assert Hive.from_bytes(bytes(data)).header.checksum_ok
    struct.pack_into("<I", data, 508, 0)
    assert Hive.from_bytes(bytes(data), allow_dirty=True).dirty


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.__setitem__(slice(0, 4), b"regx"), "not a registry hive"),
    (lambda d: struct.pack_into("<I", d, 20, 2), "unsupported version"),
    (lambda d: struct.pack_into("<I", d, 28, 1), "transaction log"),
    (lambda d: struct.pack_into("<I", d, 40, 0x1234), "multiple of 4096"),
    (lambda d: struct.pack_into("<I", d, 40, 0x100000), "truncated"),
    (lambda d: struct.pack_into("<I", d, 36, 0x7FFFFFF0), "root cell"),
    (lambda d: d.__setitem__(slice(BASE_BLOCK_SIZE, BASE_BLOCK_SIZE + 4), b"hbix"), "hbin at 0x0"),
    (lambda d: struct.pack_into("<I", d, BASE_BLOCK_SIZE + 8, 4096 * 7), "bad size"),
    (lambda d: struct.pack_into("<i", d, BASE_BLOCK_SIZE + 32, 0), "bad size 0"),
    (lambda d: struct.pack_into("<i", d, BASE_BLOCK_SIZE + 32, -0x7FFFFFF8), "bad size"),
    (lambda d: struct.pack_into("<i", d, BASE_BLOCK_SIZE + 32, 13), "bad size 13"),
])
def test_malformed_headers(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(bcd_fixture("pybcd_BCDTest").read_bytes())
    mutate(data)
    struct.pack_into("<I", data, 508, base_block_checksum(data))
    with pytest.raises(FormatError, match=match):
        Hive.from_bytes(bytes(data))


def test_truncated_file() -> None:
    data = bcd_fixture("pybcd_BCDTest").read_bytes()
    for n in (0, 100, 4095, 4096, 8000):
        with pytest.raises(FormatError):
            Hive.from_bytes(data[:n])


def test_subkey_cycle_detected() -> None:
    """Objects' list made to point back at the root: the walk refuses instead of looping."""
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    objects = hive.key("Objects")
    list_off = objects.nk.subkey_list
    pos = BASE_BLOCK_SIZE + list_off + 4 + 4  # first entry of the lf list
    struct.pack_into("<I", hive.data, pos, hive.header.root_cell)
    with pytest.raises(FormatError, match="cycle|twice"):
        list(hive.walk())


def test_ri_pointing_at_itself_detected() -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    objects = hive.key("Objects")
    list_off = objects.nk.subkey_list
    pos = BASE_BLOCK_SIZE + list_off + 4
    hive.data[pos:pos + 4] = b"ri" + struct.pack("<H", 1)
    struct.pack_into("<I", hive.data, pos + 4, list_off)
    with pytest.raises(FormatError, match="inside another ri"):
        objects.subkeys()


def test_value_decoding() -> None:
    assert decode_value(RegType.SZ, "abc\0junk".encode("utf-16-le")) == "abc"
    assert decode_value(RegType.MULTI_SZ, "a\0bb\0\0".encode("utf-16-le")) == ["a", "bb"]
    assert decode_value(RegType.DWORD, b"\x01\0\0\0") == 1
    assert decode_value(RegType.DWORD_BIG_ENDIAN, b"\0\0\0\x01") == 1
    assert decode_value(RegType.QWORD, struct.pack("<Q", 1 << 40)) == 1 << 40
    assert decode_value(RegType.DWORD, b"\x01\0") == b"\x01\0"  # wrong size: raw bytes, no exception
    assert decode_value(RegType.SZ, b"a\0b") == "a"  # odd length tolerated
