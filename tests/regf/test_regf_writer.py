"""regf writer: unchanged rewrite, edits of every kind, growth, big data; hivex reads every result."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from core.errors import FormatError, TargetWriteError, UsageError
from core.regf.c_regf import BASE_BLOCK_SIZE, base_block_checksum
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.values import RegType
from core.regf.writer import MAX_LEAF_ENTRIES, HiveWriter
from tests.regf.regf_helpers import BCD_NAMES, bcd_fixture, hivex_dump, hivexsh, make_clean, our_dump, system_hive


@pytest.fixture(scope="module")
def clean_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = system_hive(tmp_path_factory.mktemp("system"))
    make_clean(p)  # test-only: the sample is dirty (205/204); see regf_helpers.make_clean
    return p


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _fixtures(clean_system: Path) -> list[Path]:
    return [bcd_fixture(n) for n in BCD_NAMES] + [clean_system]


@pytest.mark.parametrize("name", BCD_NAMES + [pytest.param("SYSTEM", marks=pytest.mark.slow)])
def test_unchanged_rewrite(tmp_path: Path, clean_system: Path, name: str) -> None:
    src = clean_system if name == "SYSTEM" else bcd_fixture(name)
    p = _copy(src, tmp_path / "hive")
    before = src.read_bytes()
    hive = Hive.open(p)
    bak = HiveWriter(hive).save(p)
    after = p.read_bytes()
    assert len(after) == len(before)
    changed = {i for i in range(0, len(before), 4) if before[i:i + 4] != after[i:i + 4]}
    assert changed <= {4, 8, 12, 16, 508}  # seq1, seq2, timestamp, checksum: nothing else
    seq1, seq2 = struct.unpack_from("<II", after, 4)
    assert seq1 == seq2 == struct.unpack_from("<I", before, 4)[0] + 1
    assert struct.unpack_from("<I", after, 508)[0] == base_block_checksum(after)
    assert bak is not None and bak.read_bytes() == before and bak.name.startswith("hive.rescue-bak-")
    assert not (tmp_path / "hive.tmp").exists()
    assert hivex_dump(p) == our_dump(Hive.open(src))


def _edit(w: HiveWriter, big: bytes) -> None:
    k = w.add_key(w.hive.root, "RescueTest")
    w.set_value(k, "dword", RegType.DWORD, 7)
    w.set_value(k, "qword", RegType.QWORD, 1 << 40)
    w.set_value(k, "sz", RegType.SZ, "hello")
    w.set_value(k, "expand", RegType.EXPAND_SZ, "%SystemRoot%\\x")
    w.set_value(k, "multi", RegType.MULTI_SZ, ["a", "bb", "ccc"])
    w.set_value(k, "bin", RegType.BINARY, bytes(range(40)))
    w.set_value(k, "empty", RegType.BINARY, b"")
    w.set_value(k, "three", RegType.NONE, b"xyz")
    w.set_value(k, "big", RegType.BINARY, big)
    w.set_value(k, "", RegType.SZ, "default value")
    w.set_value(k, "Wert-ä", RegType.SZ, "latin-1 name")
    w.set_value(k, "名前", RegType.SZ, "UTF-16 name")
    sub = w.ensure_key("RescueTest\\a\\b\\c")
    w.set_value(sub, "deep", RegType.DWORD, 1)
    for name in ["zeta", "Alpha", "beta", "ÄRGER", "ärger2", "名前", "_under", "0digit"]:
        w.add_key(k, name)
    w.set_value(k, "sz", RegType.SZ, "grows " * 500)      # grows: new cell, old freed
    w.set_value(k, "bin", RegType.BINARY, bytes(range(20)))  # shrinks: overwritten in place
    w.set_value(k, "dword", RegType.DWORD, 8)              # inline
    w.delete_value(k, "three")
    w.delete_key("RescueTest\\beta")


@pytest.mark.parametrize("name", BCD_NAMES + [pytest.param("SYSTEM", marks=pytest.mark.slow)])
def test_edits_read_back_by_hivex(tmp_path: Path, clean_system: Path, name: str) -> None:
    src = clean_system if name == "SYSTEM" else bcd_fixture(name)
    p = _copy(src, tmp_path / "hive")
    original = our_dump(Hive.open(p))
    hive = Hive.open(p)
    w = HiveWriter(hive)
    size_before = hive.header.hbins_size
    big = os.urandom(50000)
    _edit(w, big)
    expected = our_dump(hive)
    w.save(p)
    assert hivex_dump(p) == expected
    reread = Hive.open(p)
    assert our_dump(reread) == expected
    assert check_hive(reread) == []
    big_value = reread.key("RescueTest").value("big")
    assert big_value is not None and big_value.data == big
    # Hive 1.3 (BCD) keeps big data in one cell; 1.5 (SYSTEM) must use db records.
    assert reread.is_big_data(big_value.vk) == (reread.header.minor >= 4)
    assert reread.header.hbins_size > size_before and reread.header.hbins_size % 4096 == 0
    assert reread.key("RescueTest").value("dword").value == 8  # type: ignore[union-attr]
    assert reread.key("RescueTest").value("three") is None
    names = [k.name for k in reread.key("RescueTest").subkeys()]
    assert names == ["_under", "0digit", "a", "Alpha", "ärger2", "ÄRGER", "zeta", "名前"] or \
        names == sorted(names, key=lambda n: [ord(c) for c in n.upper()])
    # hivexsh navigates our lists by name
    out = hivexsh(p, "cd \\RescueTest\\a\\b\\c", "lsval")
    assert '"deep"=dword:00000001' in out
    # Delete everything we added: hivex then sees the original content again.
    w2 = HiveWriter(reread)
    w2.delete_key("RescueTest")
    w2.save(p)
    assert hivex_dump(p) == original
    assert check_hive(Hive.open(p)) == []


def test_many_subkeys_make_an_ri_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Leaves split at MAX_LEAF_ENTRIES; a smaller limit exercises the same ri code in a fraction of the time
    # (each insert rewrites the list, so 1300 inserts cost ~20 s).
    assert MAX_LEAF_ENTRIES > 100
    monkeypatch.setattr("core.regf.writer.MAX_LEAF_ENTRIES", 40)
    p = _copy(bcd_fixture("windeploy-linux_BCD-efi"), tmp_path / "BCD")
    hive = Hive.open(p)
    w = HiveWriter(hive)
    parent = w.add_key(hive.root, "Many")
    count = 130
    for i in range(count):
        w.add_key(parent, f"K{(i * 7919) % count:05d}")
    w.save(p)
    reread = Hive.open(p)
    lst = reread.cell(reread.key("Many").nk.subkey_list)
    assert lst[:2] == b"ri" and struct.unpack_from("<H", lst, 2)[0] == 4
    assert check_hive(reread) == []
    assert [k.name for k in reread.key("Many").subkeys()] == [f"K{i:05d}" for i in range(count)]
    assert hivex_dump(p) == our_dump(reread)


def test_freed_cells_coalesce(tmp_path: Path) -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    w = HiveWriter(hive)
    free_before = dict(hive.free)
    k = w.add_key(hive.root, "Tmp")
    for i in range(20):
        w.set_value(k, f"v{i}", RegType.BINARY, bytes(100 + i))
    w.delete_key(k)
    # Every cell we took was returned and merged: no two free cells touch.
    ends = {off + size for off, size in hive.free.items()}
    assert not ends & set(hive.free)
    assert sum(hive.free.values()) >= sum(free_before.values())
    data = w.commit()
    reread = Hive.from_bytes(data)  # the tiling of every bin is re-validated on open
    assert our_dump(reread) == our_dump(Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes()))


def test_failed_edit_leaves_hive_unchanged() -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    w = HiveWriter(hive)
    sk = hive.root.nk.security
    hive.data[BASE_BLOCK_SIZE + sk + 4:BASE_BLOCK_SIZE + sk + 6] = b"xx"  # break the root's sk cell
    before = bytes(hive.data)
    with pytest.raises(FormatError, match="sk record"):
        w.add_key(hive.root, "New")
    assert bytes(hive.data) == before
    assert hive.root.subkey("New") is None


def test_bad_arguments() -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    w = HiveWriter(hive)
    for bad in ["", "a\\b", "x" * 256]:
        with pytest.raises(UsageError):
            w.add_key(hive.root, bad)
    with pytest.raises(UsageError):
        w.delete_key(hive.root)
    with pytest.raises(UsageError):
        w.set_value(hive.root, "v", RegType.DWORD, "not an int")
    assert w.add_key(hive.root, "OBJECTS").offset == hive.key("Objects").offset  # existing key returned


def test_save_errors_are_target_errors(tmp_path: Path) -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    with pytest.raises(TargetWriteError):
        HiveWriter(hive).save(tmp_path / "missing-dir" / "BCD")


def test_save_without_previous_file(tmp_path: Path) -> None:
    hive = Hive.from_bytes(bcd_fixture("pybcd_BCDTest").read_bytes())
    assert HiveWriter(hive).save(tmp_path / "new") is None
    assert Hive.open(tmp_path / "new").header.seq1 == 55
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_failed_rename_keeps_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R-16: a failure before the rename leaves the old file in place, byte-exact, and no temp file."""
    p = _copy(bcd_fixture("pybcd_BCDTest"), tmp_path / "BCD")
    before = p.read_bytes()
    hive = Hive.open(p)
    w = HiveWriter(hive)
    w.set_value(hive.root, "x", RegType.DWORD, 1)

    def boom(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("core.regf.writer.os.replace", boom)
    with pytest.raises(TargetWriteError, match="Input/output error"):
        w.save(p)
    assert p.read_bytes() == before
    assert not (tmp_path / "BCD.tmp").exists()
