"""A new empty hive (core.regf.new) filled by HiveWriter: consistent, clean, and read back identically by our
reader and by hivex (and hivexsh)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from core.regf.c_regf import BASE_BLOCK_SIZE, HBIN_ALIGN, base_block_checksum
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.new import new_hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from tests.regf.regf_helpers import hivex_dump, hivexsh, our_dump

STAMP = 129000000000000000  # a fixed FILETIME (2009): the bytes are the same on every run


def test_empty_hive_is_clean_and_hivex_reads_it(tmp_path: Path) -> None:
    hive = new_hive("NewStoreRoot", minor=3, file_name="\\??\\C:\\Boot\\BCD", timestamp=STAMP)
    data = bytes(hive.data)
    assert len(data) == BASE_BLOCK_SIZE + HBIN_ALIGN
    seq1, seq2 = struct.unpack_from("<II", data, 4)
    assert seq1 == seq2 and not hive.dirty
    assert struct.unpack_from("<I", data, 508)[0] == base_block_checksum(data)
    assert check_hive(hive) == []
    assert hive.root.name == "NewStoreRoot" and hive.root.subkeys() == [] and hive.root.values() == []
    assert hive.sk(hive.root.nk.security).refcount == 1
    p = tmp_path / "BCD"
    p.write_bytes(data)
    assert hivex_dump(p) == [["", []]]
    assert new_hive("NewStoreRoot", minor=3, file_name="\\??\\C:\\Boot\\BCD", timestamp=STAMP).data == data


@pytest.mark.parametrize("minor", [3, 5])
def test_filled_hive_reads_back_identically(tmp_path: Path, minor: int) -> None:
    hive = new_hive("CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}", minor=minor, timestamp=STAMP)
    w = HiveWriter(hive, clock=lambda: STAMP)
    ccs = w.ensure_key("ControlSet001\\Control\\ComputerName\\ComputerName")
    w.set_value(ccs, "ComputerName", RegType.SZ, "WIN7-PC")
    w.set_value(ccs, "", RegType.SZ, "mnmsrvc")  # the default value
    svc = w.ensure_key("ControlSet001\\Services\\msahci")
    w.set_value(svc, "Start", RegType.DWORD, 3)
    w.set_value(svc, "ImagePath", RegType.EXPAND_SZ, "system32\\DRIVERS\\msahci.sys")
    w.set_value(svc, "Owners", RegType.MULTI_SZ, ["mshdc.inf"])
    w.set_value(svc, "Tag", RegType.QWORD, 1 << 40)
    w.set_value("ControlSet001", "Ünïcode ✓", RegType.BINARY, bytes(range(256)) * 100)  # big data on 1.5
    for i in range(1100):  # past one leaf: an ri index list
        w.add_key("ControlSet001\\Services", f"svc{i:04d}")
    out = tmp_path / "SYSTEM"
    assert w.save(out) is None  # a new file: nothing to keep
    reread = Hive.open(out)
    assert check_hive(reread) == []
    assert reread.header.seq1 == reread.header.seq2 == 2 and reread.header.timestamp == STAMP
    assert hivex_dump(out) == our_dump(reread) == our_dump(hive)
    assert reread.key("ControlSet001\\Services\\msahci").value("Start").value == 3  # type: ignore[union-attr]
    shown = hivexsh(out, "cd ControlSet001\\Control\\ComputerName\\ComputerName", "lsval")
    assert '"ComputerName"="WIN7-PC"' in shown
