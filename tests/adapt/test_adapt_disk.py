"""`rescue adapt` and `rescue restore --adapt` on factory disks (real NTFS through ntfs-3g, hivex to check).

The factory's Windows 7 hive was installed on IDE (msahci Start=3). What is shown: the plan, a dry
run that leaves the disk byte-identical, the write with a copy of the hive kept, every change and
nothing else (whole-hive comparison), refusals (no controller for a disk file, NVMe without driver,
a dirty hive), a driver from a folder (files copied, never over a newer version), and a restore whose
last step adapts the restored Windows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from core.regf.c_regf import base_block_checksum
from core.regf.hive import Hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from core.repair.adapt import HiveEdit
from tests.adapt.drivers import AHCI_FILTER_INF, WINDOWS_HDC_INF, driver_folder, filter_folder
from tests.adapt.hive_diff import assert_only_edits, dump
from tests.conftest import need_root_tools
from tests.ntfs3g import mounted_ntfs
from tests.repair.repair_helpers import (SYSTEM, disk_copy, hive_key_values, read_ntfs_files, rescue, rescue_json,
                                         wake_up)

DRIVERS = "Windows/System32/drivers"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root_tools("ntfs-3g", "losetup", "hivexsh")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _edits(rep: dict[str, Any]) -> list[HiveEdit]:
    return [HiveEdit(c["key"], c["value"], RegType[c["type"]], c["old"], c["new"]) for c in rep["changes"]]


def _system(img: Path, c: Any, out: Path) -> Path:
    with mounted_ntfs(img, c.start, c.size, readonly=True) as mnt:
        shutil.copyfile(mnt / SYSTEM, out)
    return out


def _awake_disk(tmp_path: Path) -> Any:
    """The tiny factory disk's Windows is hibernated; shut down instead (hiberfil.sys dropped by ntfs-3g)."""
    info = disk_copy("mbr-tiny", tmp_path / "disk.img")
    wake_up(info.path, info.part("windows"))
    return info


def test_adapt_ahci_dry_run_write_and_refusals(tmp_path: Path) -> None:
    info = _awake_disk(tmp_path)
    c = info.part("windows")
    before = dump(_system(info.path, c, tmp_path / "SYSTEM.before"))
    sha = _sha(info.path)

    r = rescue("adapt", str(info.path), "--yes")  # a disk file has no controller to detect
    assert r.returncode == 3 and "--controller" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = rescue("adapt", str(info.path), "--controller", "nvme", "--yes")
    assert r.returncode == 6 and "no inbox NVMe driver: give one with --drivers DIR" in r.stderr, r.stderr
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "ahci", "--dry-run")
    assert rc == 0 and rep["dry_run"] and rep["controller"]["kind"] == "ahci", rep
    assert rep["windows"] == {"family": "7", "arch": None, "control_sets": ["ControlSet001", "ControlSet002"],
                              "version": None}
    assert {(x["key"], x["value"], x["old"], x["new"]) for x in rep["changes"]} == {
        ("ControlSet001\\Services\\msahci", "Start", 3, 0), ("ControlSet002\\Services\\msahci", "Start", 3, 0)}
    assert _sha(info.path) == sha  # the dry run wrote nothing
    human = rescue("adapt", str(info.path), "--controller", "ahci", "--dry-run")
    assert "ControlSet001\\Services\\msahci Start (DWORD): 3 → 0" in human.stdout, human.stdout
    assert "dry run: nothing was written" in human.stdout

    rc, done = rescue_json("adapt", str(info.path), "--controller", "ahci", "--yes")
    assert rc == 0 and not done["dry_run"] and done["changes"] == rep["changes"], done
    assert [b for b in done["backups"] if b.startswith("partition 2:\\Windows\\System32\\config\\SYSTEM.rescue-bak-")]
    after = assert_only_edits(before, _system(info.path, c, tmp_path / "SYSTEM.after"), _edits(done))
    assert after["controlset002\\services\\msahci"]["start"] == (RegType.DWORD, "00000000")
    files = read_ntfs_files(info.path, c.start, c.size, "Windows/System32/config")
    bak = next(n for n in files if n.startswith("SYSTEM.rescue-bak-"))
    assert dump_bytes(tmp_path, files[bak]) == before  # the copy kept is the hive as it was
    again = rescue("adapt", str(info.path), "--controller", "ahci", "--yes")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout


def dump_bytes(tmp: Path, data: bytes) -> Any:
    p = tmp / "hive.copy"
    p.write_bytes(data)
    return dump(p)


def test_hibernated_windows_and_dirty_hive_are_left_alone_with_exit_102(tmp_path: Path) -> None:
    info = disk_copy("mbr-tiny", tmp_path / "disk.img")  # hibernated: ntfs-3g mounts it read-only only
    c = info.part("windows")
    sha = _sha(info.path)
    for mode in ("--dry-run", "--yes"):
        rc, rep = rescue_json("adapt", str(info.path), "--controller", "ahci", mode)
        assert rc == 102 and any("hibernated" in p for p in rep["problems"]) and not rep["changes"], rep
    assert _sha(info.path) == sha
    wake_up(info.path, c)
    with mounted_ntfs(info.path, c.start, c.size, readonly=False) as mnt:  # a write Windows never finished
        data = bytearray((mnt / SYSTEM).read_bytes())
        struct.pack_into("<I", data, 4, struct.unpack_from("<I", data, 8)[0] + 1)
        struct.pack_into("<I", data, 508, base_block_checksum(data))
        (mnt / SYSTEM).write_bytes(bytes(data))
    sha = _sha(info.path)
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "ahci", "--yes")
    assert rc == 102 and any("dirty" in p for p in rep["problems"]) and not rep["changes"], rep
    assert _sha(info.path) == sha


def _set_arch(img: Path, c: Any, arch: str) -> None:
    """Test setup: the factory hive names no architecture; give it one, as every real one has."""
    with mounted_ntfs(img, c.start, c.size, readonly=False) as mnt:
        hive = Hive.open(mnt / SYSTEM)
        w = HiveWriter(hive)
        for cs in ("ControlSet001", "ControlSet002"):
            w.set_value(w.ensure_key(f"{cs}\\Control\\Session Manager\\Environment"), "PROCESSOR_ARCHITECTURE",
                        RegType.SZ, arch)
        (mnt / SYSTEM).write_bytes(w.commit())


def test_nvme_driver_from_folder_never_over_a_newer_file(tmp_path: Path) -> None:
    info = _awake_disk(tmp_path)
    c = info.part("windows")
    _set_arch(info.path, c, "AMD64")
    folder = driver_folder(tmp_path / "drv", version=(2, 0, 0, 1))
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "nvme", "--drivers", str(folder), "--yes")
    assert rc == 0, rep
    assert rep["driver"]["hardware_id"] == "PCI\\CC_010802" and rep["driver"]["services"] == ["exstor", "exfilt"]
    assert [(f["name"], f["action"]) for f in rep["files"]] == [("exstor.sys", "copy"), ("exfilt.sys", "copy")]
    drivers = read_ntfs_files(info.path, c.start, c.size, DRIVERS)
    assert drivers["exstor.sys"] == (folder / "x64" / "exstor.sys").read_bytes()  # the 64-bit file
    hive = _system(info.path, c, tmp_path / "SYSTEM")
    svc = hive_key_values(hive, "ControlSet001\\Services\\exstor")
    assert svc is not None and svc["Start"] == (RegType.DWORD, bytes(4))
    cdd = hive_key_values(hive, "ControlSet002\\Control\\CriticalDeviceDatabase\\PCI#CC_010802")
    assert cdd is not None and cdd["Service"][1].decode("utf-16-le").rstrip("\0") == "exstor"

    older = driver_folder(tmp_path / "older", version=(1, 0, 0, 0))
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "nvme", "--drivers", str(older), "--yes")
    assert rc == 0 and {f["action"] for f in rep["files"]} == {"keep"}, rep  # a newer one is there
    assert read_ntfs_files(info.path, c.start, c.size, DRIVERS)["exstor.sys"] == drivers["exstor.sys"]

    (older / "x64" / "exstor.sys").write_bytes(b"no version resource here")
    sha = _sha(info.path)
    r = rescue("adapt", str(info.path), "--controller", "nvme", "--drivers", str(older), "--yes")
    assert r.returncode == 6 and "refusing to overwrite" in r.stderr, r.stderr
    assert _sha(info.path) == sha

    newer = driver_folder(tmp_path / "newer", version=(3, 0, 0, 0))
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "nvme", "--drivers", str(newer), "--yes")
    assert rc == 0 and {f["action"] for f in rep["files"]} == {"replace"}, rep
    assert any("drivers\\exstor.sys.rescue-bak-" in b for b in rep["backups"]), rep["backups"]


def test_included_windows_inf_its_file_must_be_on_the_windows(tmp_path: Path) -> None:
    """A filter driver whose INF takes the AHCI install from a Windows INF (Include=/Needs=): the filter's
    file is copied, the Windows INF's own driver is used where it is; one the Windows lacks is refused."""
    info = _awake_disk(tmp_path)
    c = info.part("windows")
    _set_arch(info.path, c, "AMD64")
    folder = filter_folder(tmp_path / "drv")
    # named by class (--controller ahci), with the service and file of the factory's Windows (msahci)
    (folder / "exahci.inf").write_text(AHCI_FILTER_INF.replace("PCI\\VEN_8086&DEV_2922", "PCI\\CC_010601")
                                       .replace("stdahci", "msahci"))
    (folder / "windows" / "exhdc.inf").write_text(WINDOWS_HDC_INF.replace("stdahci", "msahci"))
    sys_before = read_ntfs_files(info.path, c.start, c.size, DRIVERS)["msahci.sys"]
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "ahci", "--drivers", str(folder), "--yes")
    assert rc == 0, rep
    assert rep["driver"]["services"] == ["exahcf", "msahci"] and rep["driver"]["included"] == [
        str(folder / "windows" / "exhdc.inf")]
    assert [(f["name"], f["action"]) for f in rep["files"]] == [("exahcf.sys", "copy"), ("msahci.sys", "keep")]
    drivers = read_ntfs_files(info.path, c.start, c.size, DRIVERS)
    assert drivers["exahcf.sys"] == (folder / "exahcf.sys").read_bytes() and drivers["msahci.sys"] == sys_before
    hive = _system(info.path, c, tmp_path / "SYSTEM")
    for cs in ("ControlSet001", "ControlSet002"):
        cdd = hive_key_values(hive, f"{cs}\\Control\\CriticalDeviceDatabase\\PCI#CC_010601")
        assert cdd is not None and cdd["Service"][1].decode("utf-16-le").rstrip("\0") == "msahci"
        assert hive_key_values(hive, f"{cs}\\Services\\exahcf") is not None

    (folder / "windows" / "exhdc.inf").write_text(WINDOWS_HDC_INF.replace("stdahci.sys", "nosuch.sys")
                                                  .replace("stdahci", "msahci"))
    sha = _sha(info.path)
    r = rescue("adapt", str(info.path), "--controller", "ahci", "--drivers", str(folder), "--yes")
    assert r.returncode == 6 and "nosuch.sys (copied by exhdc.inf, which the driver includes) is neither in the " \
        "driver folder nor in partition" in r.stderr, r.stderr
    assert _sha(info.path) == sha


def test_restore_adapt_onto_blank_disk(tmp_path: Path) -> None:
    info = _awake_disk(tmp_path)
    folder = tmp_path / "backup"
    r = rescue("backup", str(info.path), str(folder))
    assert r.returncode == 0, r.stderr
    target = tmp_path / "target.img"
    with target.open("wb") as f:
        f.truncate(info.size)
    sha = _sha(target)
    r = rescue("restore", str(folder), str(target), "--adapt", "--controller", "ahci", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["plan"]["adapt"]["controller"]["kind"] == "ahci"
    assert _sha(target) == sha  # byte-identical after the dry run
    r = rescue("restore", str(folder), str(target), "--controller", "ahci", "--yes")
    assert r.returncode == 3 and "--adapt" in r.stderr
    r = rescue("restore", str(folder), str(target), "--adapt", "--controller", "ahci", "--yes")
    assert r.returncode == 0, r.stderr
    c = info.part("windows")
    with (tmp_path / "clone.img").open("wb") as f:
        f.truncate(info.size)
    r = rescue("clone", str(info.path), str(tmp_path / "clone.img"), "--adapt", "--controller", "ahci", "--yes")
    assert r.returncode == 0, r.stderr
    for img in (target, tmp_path / "clone.img"):
        hive = _system(img, c, tmp_path / "SYSTEM")
        for cs in ("ControlSet001", "ControlSet002"):
            svc = hive_key_values(hive, f"{cs}\\Services\\msahci")
            assert svc is not None and svc["Start"] == (RegType.DWORD, bytes(4)), img
    # The restore is complete before the adapt runs: a refusal there is what was left undone (102).
    r = rescue("restore", str(folder), str(target), "--adapt", "--controller", "nvme", "--yes")
    assert r.returncode == 102 and "adapt not done" in r.stderr and "--drivers DIR" in r.stderr, r.stderr


def test_dirty_hive_with_its_log_is_replayed_then_adapted(tmp_path: Path) -> None:
    """A SYSTEM hive left dirty by a crash, with the log Windows wrote: replayed as Windows would, then
    adapted (exit 0); the log is emptied and the originals of both are kept and listed."""
    info = disk_copy("mbr-small", tmp_path / "disk.img", hiberfil_magic=b"wake", dirty_system="logged")
    c = info.part("windows")
    before = read_ntfs_files(info.path, c.start, c.size, "Windows/System32/config")
    seq1, seq2 = struct.unpack_from("<II", before["SYSTEM"], 4)
    assert seq1 == seq2 + 1 and len(before["SYSTEM.LOG1"]) > 4096
    rc, rep = rescue_json("adapt", str(info.path), "--controller", "ahci", "--yes")
    assert rc == 0 and not rep["problems"], rep
    assert rep["changes"], rep
    after = read_ntfs_files(info.path, c.start, c.size, "Windows/System32/config")
    seq1, seq2 = struct.unpack_from("<II", after["SYSTEM"], 4)
    assert seq1 == seq2 and after["SYSTEM.LOG1"] == b""
    kept = sorted(b.split("\\")[-1].split(".rescue-bak-")[0] for b in rep["backups"] if "config" in b)
    assert kept == ["SYSTEM", "SYSTEM.LOG1"], rep["backups"]
    msahci = hive_key_values(after["SYSTEM"], "ControlSet001\\services\\msahci")
    assert msahci is not None and struct.unpack_from("<I", msahci["Start"][1])[0] == 0, msahci
