"""`rescue adapt` on Windows: the CLI and engine in Windows' CPython under Wine, editing a volume's files.

What is real: the pinned Windows CPython (builder/wine.py, as tests/platform/test_wine.py runs it) with
our win_amd64 wheels, the `rescue` CLI run in-process there, and every file operation of the adapt
(listing folders, reading the hive, writing the temp file, the hard-linked backup, the replacing rename,
fsync, copying the driver) made through Windows' file APIs (Wine's kernel32 over a folder mapped as a
drive letter: the folder stands for the volume WinPE mounted on the Windows partition). The SYSTEM
hives are the real samples (../shared/fixtures/hives: Windows 7 SP1 x86; Windows 10 dirty, without
its logs), and the result is compared key by key with hivex on the host.

What is faked (Wine has no PhysicalDrive with NTFS volumes on it): the Win32 disk and volume calls
(tests/platform/windows/fake_win32.py, installed with `seam.install`: the factory's Windows 7 disk
image read raw as ``\\\\.\\PhysicalDriveN``, its partition's volume enumerated with the drive letter of
the mapped folder, its extents, FlushFileBuffers on the volume) and the device tree (cfgmgr32: the disk
under an ICH9 AHCI function, another under an NVMe one). The volume→disk mapping itself is
test_mounted.py's. Not shown: files reached through a volume's GUID path (a volume WinPE gave no
letter): Wine 8 opens no file through one (error 66), so only how such a root joins is checked. One Wine
prefix, one Windows Python run for every case (about 20 s).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
from pathlib import Path
from typing import Any

import pytest

from builder import wine
from core.regf.values import RegType
from core.repair.adapt import HiveEdit
from tests.adapt.drivers import NVME_DEV, NVME_VEN, driver_folder
from tests.adapt.hive_diff import assert_only_edits, dump
from tests.conftest import ROOT, need_root_tools, shared_fixture
from tests.platform.test_wine import CACHE, WinPython
from tests.repair.repair_helpers import disk_copy

# building the prefix and one Python run with a dozen adapts: above the ini-wide timeout on a busy machine
pytestmark = pytest.mark.timeout(1200)

SCRIPT = r'''
import contextlib, hashlib, io, json, os, shutil, sys
from pathlib import Path
from core.platform.windows import devtree, seam
from tests.platform.windows.fake_win32 import FakeDisk, FakeWin32

cfg = json.loads(Path(sys.argv[1]).read_text())
fake = FakeWin32({int(n): FakeDisk(Path(d["image"]), letters={cfg["partition"]: [d["letter"]]})
                  for n, d in cfg["disks"].items()})


def pci_ids(ven, dev, subsys, cc):
    vd = f"PCI\\VEN_{ven:04X}&DEV_{dev:04X}"
    return [f"{vd}&SUBSYS_{subsys:08X}&REV_02", f"{vd}&SUBSYS_{subsys:08X}", f"{vd}&CC_{cc:06X}",
            f"{vd}&CC_{cc >> 8:04X}", f"{vd}&REV_02", vd, f"PCI\\CC_{cc:06X}", f"PCI\\CC_{cc >> 8:04X}"]


class Tree:
    """Disk 0 under an ICH9 AHCI function (8086:2922), disk 3 under an NVMe one; the others on none."""
    nodes = {"AHCI": ("PCI\\VEN_8086&DEV_2922&SUBSYS_11001AF4&REV_02\\3&1&0&FA", (0x8086, 0x2922, 0x11001AF4, 0x010601),
                      "PCI bus 0, device 31, function 2"),
             "NVME": (f"PCI\\VEN_{cfg['nvme'][0]:04X}&DEV_{cfg['nvme'][1]:04X}&SUBSYS_00000000&REV_02\\4&2&0&E8",
                      (cfg["nvme"][0], cfg["nvme"][1], 0, 0x010802), "PCI bus 1, device 0, function 0")}
    disks = {"\\\\?\\scsi#disk&ven_&prod_a#0": (0, "SCSI\\DISK&VEN_&PROD_A\\0", "AHCI"),
             "\\\\?\\scsi#disk&ven_nvme&prod_b#3": (3, "SCSI\\DISK&VEN_NVME&PROD_B\\3", "NVME")}

    def disk_interfaces(self): return list(self.disks)
    def device_number(self, i): return self.disks[i][0]
    def instance_id(self, i): return self.disks[i][1]
    def parent(self, inst):
        return next((self.nodes[k][0] for _, d, k in self.disks.values() if d == inst), None)
    def ids(self, inst):
        return next((pci_ids(*v) for i, v, _ in self.nodes.values() if i == inst), [])
    def location(self, inst):
        return next((loc for i, _, loc in self.nodes.values() if i == inst), "")


# A volume WinPE gave no letter is reached by its GUID path (NtfsFiles' root). Wine 8 gives a GUID only to
# C: and opens no file through such a path (error 66, "bad device type"; Windows does), so only how
# Windows' Python joins one is shown here: the GUID path is the drive, "\\" its root.
from core.platform.windows.kernel32 import Kernel32
guid = Kernel32().volume_name_for_mount_point("C:\\")
guid_join = str(Path(guid) / "Windows" / "System32")
seam.install(fake)
devtree.install(Tree())
flushed = []  # (volume, sha256 of its SYSTEM hive when the volume was flushed)
real_flush = fake.flush_file_buffers
def flush(handle):
    real_flush(handle)
    name = fake.handles[handle].key
    letter = next(v.paths[0] for v in fake.volumes if v.name == name)
    hive = Path(letter) / "Windows" / "System32" / "config" / "SYSTEM"
    flushed.append([letter, hashlib.sha256(hive.read_bytes()).hexdigest()])
fake.flush_file_buffers = flush

from rescue import cli
out = {"platform": sys.platform, "guid": guid, "guid_join": guid_join, "runs": []}
for step in cfg["runs"]:
    so, se = io.StringIO(), io.StringIO()
    before = len(flushed)
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try:
            cli.main(step["argv"])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if step.get("keep"):  # the hive as this step left it, for the host to compare
        shutil.copyfile(step["keep"][0], step["keep"][1])
    out["runs"].append({"code": code, "stdout": so.getvalue(), "stderr": se.getvalue(), "flushed": flushed[before:]})
print(json.dumps(out))
'''

SYSTEM = "Windows/System32/config/SYSTEM"
DRIVERS = "Windows/System32/drivers"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _volume(folder: Path, hive: bytes, logs: dict[str, bytes] | None = None) -> Path:
    """A folder laid out as a Windows volume: the hive (and its logs), an empty drivers folder."""
    (folder / SYSTEM).parent.mkdir(parents=True)
    (folder / DRIVERS).mkdir(parents=True)
    (folder / SYSTEM).write_bytes(hive)
    for ext, data in (logs or {}).items():
        (folder / f"{SYSTEM}.{ext}").write_bytes(data)
    return folder


def _edits(rep: dict[str, Any]) -> list[HiveEdit]:
    return [HiveEdit(c["key"], c["value"], RegType[c["type"]], c["old"], c["new"]) for c in rep["changes"]]


def test_adapt_through_windows_file_apis(tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "losetup", "hivexsh")  # the factory disks (ntfs-3g) and hivex's dump
    win7 = lzma.decompress(shared_fixture("hives/regipy_SYSTEM.xz").read_bytes())
    win10_dirty = lzma.decompress(shared_fixture("hives/dirty/regipy_SYSTEM_B/SYSTEM_B.xz").read_bytes())
    images = tmp_path / "images"
    images.mkdir()
    awake = disk_copy("mbr-small", images / "awake.img", hiberfil_magic=b"wake")
    disk_copy("mbr-small", images / "hibernated.img")  # hiberfil.sys holds a session: never written
    part = awake.part("windows").number
    vols = {"V": _volume(tmp_path / "vol-ahci", win7), "N": _volume(tmp_path / "vol-nvme", win7),
            "U": _volume(tmp_path / "vol-dirty", win10_dirty)}
    before = {k: _tree(v) for k, v in vols.items()}
    for name, version in (("drv", (2, 0, 0, 1)), ("older", (1, 0, 0, 0))):
        driver_folder(tmp_path / "work" / name, version=version)
    work = tmp_path / "work"
    disks = {0: ("awake.img", "V"), 1: ("hibernated.img", "H"), 2: ("awake.img", "U"), 3: ("awake.img", "N")}
    d0, d1, d2, d3 = (f"\\\\.\\PhysicalDrive{n}" for n in range(4))
    runs: list[dict[str, Any]] = [
        {"argv": ["adapt", d0, "--dry-run", "--json"]},  # 0: the controller detected, nothing written
        {"argv": ["adapt", d0, "--yes", "--json"], "keep": ["V:\\" + SYSTEM.replace("/", "\\"), "W:\\ahci.SYSTEM"]},
        {"argv": ["adapt", d0, "--yes"]},  # 2: again: nothing left to change
        {"argv": ["adapt", d3, "--yes", "--json"]},  # 3: Windows 7 onto NVMe without a driver: refused
        {"argv": ["adapt", d3, "--drivers", "W:\\drv", "--yes", "--json"]},  # 4: the driver installed
        {"argv": ["adapt", d3, "--drivers", "W:\\older", "--yes", "--json"]},  # 5: an older one: kept
        {"argv": ["adapt", d1, "--controller", "ahci", "--yes", "--json"]},  # 6: hibernated: 102
        {"argv": ["adapt", d2, "--controller", "ahci", "--yes", "--json"]},  # 7: dirty without logs: 102
    ]
    config = {"partition": part, "nvme": [NVME_VEN, NVME_DEV], "runs": runs,
              "disks": {n: {"image": f"D:\\{img}", "letter": f"{letter}:\\"} for n, (img, letter) in disks.items()}}
    (work / "config.json").write_text(json.dumps(config))
    (work / "adapt.py").write_text(SCRIPT)

    base = tmp_path / "wine"
    python = wine.windows_python(CACHE)
    site = base / "site"
    wine.install_wheels(wine.fetch_wheels(wine.RUNTIME_LOCK, CACHE), site)
    prefix = wine.Prefix(base / "prefix", shim=wine.build_prng_shim(CACHE))
    try:
        for letter, folder in (("P", python), ("S", site), ("R", ROOT), ("W", work), ("D", images),
                               *((k, v) for k, v in vols.items())):
            prefix.map_drive(letter, folder)
        r = WinPython(prefix, work).run("W:\\adapt.py", "W:\\config.json")
    finally:
        prefix.close()
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["platform"] == "win32"
    res = out["runs"]

    def rep(i: int) -> dict[str, Any]:
        assert res[i]["code"] in (0, 102), res[i]
        parsed: dict[str, Any] = json.loads(res[i]["stdout"])
        return parsed

    # 0: detected from the device tree as on Linux from sysfs; the dry run changed no file, flushed nothing
    plan = rep(0)
    assert res[0]["code"] == 0 and plan["dry_run"]
    assert (plan["controller"]["kind"], plan["controller"]["source"], plan["controller"]["pci_address"]) == \
        ("ahci", "detected", "00:1f.2")
    assert plan["windows"]["family"] == "7" and plan["windows"]["arch"] == "x86" and plan["changes"]
    assert res[0]["flushed"] == []

    # 1: written: exactly the plan's edits and nothing else (hivex, every key and value), a copy kept,
    # and the volume flushed once, after the hive was replaced
    done = rep(1)
    assert res[1]["code"] == 0 and done["changes"] == plan["changes"] and not done["problems"], done
    (tmp_path / "w7.SYSTEM").write_bytes(win7)
    original = dump(tmp_path / "w7.SYSTEM")
    after = assert_only_edits(original, work / "ahci.SYSTEM", _edits(done))
    assert after["controlset001\\services\\msahci"]["start"] == (RegType.DWORD, "00000000")
    assert "controlset002\\control\\criticaldevicedatabase\\pci#ven_8086&dev_2922&cc_0106" in after
    config_dir = vols["V"] / "Windows/System32/config"
    baks = sorted(p.name for p in config_dir.iterdir() if p.name.startswith("SYSTEM.rescue-bak-"))
    assert len(baks) == 1 and (config_dir / baks[0]).read_bytes() == win7, baks
    assert done["backups"] == [f"partition {part}:\\Windows\\System32\\config\\{baks[0]}"]
    assert not [p for p in config_dir.iterdir() if p.name.endswith(".tmp")]
    assert res[1]["flushed"] == [["V:\\", _sha(work / "ahci.SYSTEM")]]
    # 2: nothing left to change
    assert res[2]["code"] == 0 and "nothing to change" in res[2]["stdout"], res[2]
    assert _sha(vols["V"] / SYSTEM) == _sha(work / "ahci.SYSTEM")

    # 3: Windows 7 has no inbox NVMe driver: refused in one line, nothing written
    assert res[3]["code"] == 6 and "no inbox NVMe driver: give one with --drivers DIR" in res[3]["stderr"], res[3]
    # 4: the x86 driver (a 32-bit Windows) copied through Windows' file APIs, its service and CDD entries
    drv = rep(4)
    assert res[4]["code"] == 0 and drv["controller"]["vendor"] == NVME_VEN, drv
    assert [(f["name"], f["action"]) for f in drv["files"]] == [("exstor.sys", "copy"), ("exfilt.sys", "copy")]
    for name in ("exstor.sys", "exfilt.sys"):
        assert (vols["N"] / DRIVERS / name).read_bytes() == (work / "drv" / "x86" / name).read_bytes()
    nvme_after = assert_only_edits(original, vols["N"] / SYSTEM, _edits(drv))
    assert nvme_after["controlset001\\services\\exstor"]["start"] == (RegType.DWORD, "00000000")
    assert len(res[4]["flushed"]) == 1 and res[4]["flushed"][0][0] == "N:\\"
    # 5: an older driver never replaces a newer one
    older = rep(5)
    assert res[5]["code"] == 0 and {f["action"] for f in older["files"]} == {"keep"}, older
    assert (vols["N"] / DRIVERS / "exstor.sys").read_bytes() == (work / "drv" / "x86" / "exstor.sys").read_bytes()

    # 6, 7: a hibernated Windows and a dirty hive are left alone: exit 102, their volumes untouched
    hib, dirty = rep(6), rep(7)
    assert res[6]["code"] == 102 and any("hibernated" in p for p in hib["problems"]) and not hib["changes"], hib
    assert res[7]["code"] == 102 and any("dirty" in p for p in dirty["problems"]) and not dirty["changes"], dirty
    assert _tree(vols["U"]) == before["U"]

    # a volume's GUID path (a volume without a letter) joins as a drive: \\?\Volume{...}\Windows\System32
    assert out["guid"].startswith("\\\\?\\Volume{") and out["guid"].endswith("}\\")
    assert out["guid_join"] == out["guid"] + "Windows\\System32"
