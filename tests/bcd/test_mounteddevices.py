"""MountedDevices codec and rewrite on the real Windows 10 SYSTEM sample (clean copy), checked by hivex."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.bcd.device import GptPartitionId, MbrPartitionId
from core.bcd.mounteddevices import (GptVolume, MbrVolume, OtherVolume, decode_mounted, drive_letters, encode_mounted,
                                     mounted_devices, rewrite_mounted_devices, set_drive_letter)
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.writer import HiveWriter
from tests.regf.regf_helpers import hivex_dump, make_clean, system_hive

SIG = 0x273E4CFE


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = system_hive(tmp_path_factory.mktemp("mounted"))
    make_clean(p)  # test-only: the sample is dirty (205/204); see regf_helpers.make_clean
    return p


def test_letters_of_sample(system: Path) -> None:
    hive = Hive.open(system)
    letters = drive_letters(hive)
    assert letters["C"] == MbrVolume(SIG, 0x15F00000)
    d = letters["D"]
    assert isinstance(d, OtherVolume) and "CdRom" in d.text
    vols = mounted_devices(hive)
    assert MbrVolume(SIG, 0x100000) in vols.values()  # System Reserved, letter-less
    for v in hive.key("MountedDevices").values():
        assert encode_mounted(decode_mounted(v.data)) == v.data


def test_codec() -> None:
    g = GptVolume("1e178d94-4f79-41e9-865d-2e5b4328cd23")
    raw = encode_mounted(g)
    assert raw[:8] == b"DMIO:ID:" and len(raw) == 24 and decode_mounted(raw) == g
    assert decode_mounted(encode_mounted(MbrVolume(1, 2))) == MbrVolume(1, 2)
    assert isinstance(decode_mounted(b"DMIO:ID:short"), OtherVolume)


@pytest.mark.slow
def test_rewrite(tmp_path: Path, system: Path) -> None:
    p = tmp_path / "SYSTEM"
    p.write_bytes(system.read_bytes())
    hive = Hive.open(p)
    w = HiveWriter(hive)
    changes = rewrite_mounted_devices(w, {
        MbrPartitionId(SIG, 0x15F00000): MbrPartitionId(0x11223344, 0x20000000),
        MbrPartitionId(SIG, 0x100000): GptPartitionId("00673c7f-74ac-4730-a318-504c9c85c721",
                                                       "aa622b43-45a2-4b6d-88e5-d737548f5792"),
    })
    names = sorted(c.name for c in changes)
    assert len(names) == 3 and "\\DosDevices\\C:" in names  # C: + its Volume{} twin + System Reserved
    set_drive_letter(w, "e", MbrVolume(0x11223344, 0x40000000))
    w.save(p)
    dump = dict(hivex_dump(p))
    vals = {name: bytes.fromhex(h) for name, _, h in dump["MountedDevices"]}
    assert decode_mounted(vals["\\DosDevices\\C:"]) == MbrVolume(0x11223344, 0x20000000)
    assert decode_mounted(vals["\\DosDevices\\E:"]) == MbrVolume(0x11223344, 0x40000000)
    assert GptVolume("aa622b43-45a2-4b6d-88e5-d737548f5792") in [decode_mounted(v) for v in vals.values()]
    letters = drive_letters(Hive.open(p))
    assert isinstance(letters["D"], OtherVolume)  # untouched
    assert check_hive(Hive.open(p)) == []
