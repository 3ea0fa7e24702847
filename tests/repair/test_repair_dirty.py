"""End to end: boot repair of a Windows 7 disk whose SYSTEM hive is dirty after a crash.

The factory disk (``dirty_system="logged"``) holds SYSTEM as Windows 7 leaves it when it crashed in
the middle of a write (sequence numbers N+1/N, the renamed computer only in the old-format SYSTEM.LOG1,
an empty SYSTEM.LOG2). After a new disk signature, `rescue fix-boot` replays the log, repairs the drive
letters in the recovered hive and exits 0; the hive on disk is then clean (read back with hivex), its
log is emptied, and the originals are kept beside them. With the log lost, the hive is left alone and
the exit code is 102, as before.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import need_root_tools
from tests.ntfs3g import mounted_ntfs
from tests.repair.repair_helpers import (disk_copy, hive_key_values, read_ntfs_files, rescue, rescue_json,
                                         set_mbr_signature)
from tests.win7_hives import LOGGED_COMPUTER

pytestmark = [pytest.mark.root, pytest.mark.slow]

NEW_SIG = 0x5EED1E55
COMPUTER_NAME = "ControlSet001\\Control\\ComputerName\\ComputerName"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root_tools("losetup", "ntfs-3g", "hivexsh")


def _config(img: Path, start: int, size: int) -> dict[str, bytes]:
    return read_ntfs_files(img, start, size, "Windows/System32/config")


def test_dirty_system_replayed_then_repaired(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake", dirty_system="logged")
    c = info.part("windows")
    with mounted_ntfs(info.path, c.start, c.size, readonly=False) as mnt:  # found whatever its case
        cfg = mnt / "Windows/System32/config"
        (cfg / "SYSTEM.LOG1").rename(cfg / "system.log1")
    before = _config(info.path, c.start, c.size)
    seq1, seq2 = struct.unpack_from("<II", before["SYSTEM"], 4)
    assert seq1 == seq2 + 1 and len(before["system.log1"]) > 4096 and before["SYSTEM.LOG2"] == b""
    names = hive_key_values(before["SYSTEM"], COMPUTER_NAME)
    assert names is not None and LOGGED_COMPUTER.encode("utf-16-le") not in names["ComputerName"][1]

    # Showing reads it as recovered and says so.
    r = rescue("bcd", "show", str(info.path))
    assert r.returncode == 0, r.stderr
    assert "was dirty: read as recovered from its logs (SYSTEM.LOG1: 24 dirty pages" in r.stdout, r.stdout
    assert "problem" not in r.stderr

    set_mbr_signature(info.path, NEW_SIG)
    rc, rep = rescue_json("fix-boot", str(info.path), "--yes")
    assert rc == 0, rep
    assert not rep["problems"], rep["problems"]
    assert any("SYSTEM was dirty: read as recovered from its logs" in n for n in rep["notes"]), rep["notes"]
    letters = [ch for ch in rep["changes"] if ch["area"] == "letters"]
    assert letters  # MountedDevices was rewritten in the recovered hive

    after = _config(info.path, c.start, c.size)
    seq1, seq2 = struct.unpack_from("<II", after["SYSTEM"], 4)
    assert seq1 == seq2 and seq1 > struct.unpack_from("<I", before["system.log1"], 4)[0]
    names = hive_key_values(after["SYSTEM"], COMPUTER_NAME)  # hivex reads the written hive
    assert names is not None and names["ComputerName"][1] == (LOGGED_COMPUTER + "\0").encode("utf-16-le")
    md = hive_key_values(after["SYSTEM"], "MountedDevices")
    assert md is not None and struct.unpack_from("<I", md["\\DosDevices\\C:"][1])[0] == NEW_SIG
    # The log is emptied, the empty LOG2 left as it was; the originals are kept beside them.
    assert after["system.log1"] == b"" and after["SYSTEM.LOG2"] == b""
    kept = {n: d for n, d in after.items() if ".rescue-bak-" in n}
    assert sorted(n.split(".rescue-bak-")[0] for n in kept) == ["SYSTEM", "system.log1"]
    for n, d in kept.items():
        assert d == before[n.split(".rescue-bak-")[0]]
    assert sorted(b.split("\\")[-1].split(".rescue-bak-")[0] for b in rep["backups"]
                  if "config" in b) == ["SYSTEM", "system.log1"]

    # A second run finds a clean hive: nothing replayed, nothing left to change.
    rc, again = rescue_json("fix-boot", str(info.path), "--yes")
    assert rc == 0 and again["changes"] == [] and not any("dirty" in n for n in again["notes"]), again


def test_dirty_system_with_its_log_lost_is_left_alone(tmp_path: Path) -> None:
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake", dirty_system="logged")
    c = info.part("windows")
    with mounted_ntfs(info.path, c.start, c.size, readonly=False) as mnt:
        (mnt / "Windows/System32/config/SYSTEM.LOG1").unlink()
    before = _config(info.path, c.start, c.size)
    set_mbr_signature(info.path, NEW_SIG)
    rc, rep = rescue_json("fix-boot", str(info.path), "--yes")
    assert rc == 102, rep
    problem = next(p for p in rep["problems"] if "SYSTEM" in p)
    assert "is dirty and was not replayed from its logs: its logs are empty" in problem, problem
    assert [ch for ch in rep["changes"] if ch["area"] == "bcd"]  # the rest of the repair went on
    after = _config(info.path, c.start, c.size)
    assert after == before  # the hive and its (empty) LOG2 untouched, no copies made
