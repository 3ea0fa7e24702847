"""`plan_adapt` on the real SYSTEM samples (copies): exactly the intended values change, checked by hivex.

Windows 7 SP1 x86 (``regipy_SYSTEM``, with its CriticalDeviceDatabase) for every controller kind, and
Windows 8.1 (``regipy_SYSTEM_2``: its DriverDatabase says 6.3; marked clean on a copy since its logs are
absent) and Windows 10 (``dirty/regipy_SYSTEM_B``) for storahci and stornvme with their StartOverride
subkeys (drivers from a folder on Windows 8 and later: test_adapt_win8.py). The whole hive is dumped by
hivex before and after, and the difference must be the plan's edits, no more and no less.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import pytest

from core.disk.controller import Controller
from core.drivers.inf import Inf, find_device
from core.errors import UnsupportedError
from core.regf.hive import Hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from core.repair.adapt import AdaptPlan, apply_edits, plan_adapt, windows_info
from core.repair.adapt_table import HDC_CLASS, SCSI_CLASS
from tests.adapt.drivers import NVME_DEV, NVME_SUBSYS, NVME_VEN, driver_folder
from tests.adapt.hive_diff import Dump, assert_only_edits, dump
from tests.conftest import shared_fixture
from tests.regf.regf_helpers import make_clean

CLOCK = 132000000000000000

# Controllers as a real machine shows them (QEMU q35 ICH9 AHCI, PIIX3 IDE, an ICH8 RAID, an LSI SAS2008).
AHCI = Controller("ahci", "detected", "0000:00:1f.2", 0x010601, 0x8086, 0x2922, 0x11001AF4)
IDE = Controller("ide", "detected", "0000:00:01.1", 0x010180, 0x8086, 0x7010, 0x11001AF4)
RAID = Controller("intel-raid", "detected", "0000:00:1f.2", 0x010400, 0x8086, 0x2822, None)
SAS = Controller("sas", "detected", "0000:03:00.0", 0x010700, 0x1000, 0x0072, 0x30201000)
NVME = Controller("nvme", "detected", "0000:01:00.0", 0x010802, NVME_VEN, NVME_DEV, NVME_SUBSYS)


def _sample(tmp: Path, name: str) -> Path:
    out = tmp / name.removesuffix(".xz")
    out.write_bytes(lzma.decompress(shared_fixture(f"hives/{name}").read_bytes()))
    return out


@pytest.fixture(scope="module")
def win7(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dump]:
    path = _sample(tmp_path_factory.mktemp("w7"), "regipy_SYSTEM.xz")
    return path, dump(path)


@pytest.fixture(scope="module")
def win81(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _sample(tmp_path_factory.mktemp("w81"), "regipy_SYSTEM_2.xz")
    make_clean(path)  # test-only: the sample is dirty and its logs are not part of it
    return path


def _adapt(src: Path, dst: Path, ctl: Controller, **kw: Any) -> AdaptPlan:
    hive = Hive.from_bytes(src.read_bytes(), name=src.name)
    plan = plan_adapt(hive, ctl, **kw)
    w = HiveWriter(hive, clock=lambda: CLOCK)
    apply_edits(w, plan.edits)
    dst.write_bytes(w.commit())
    return plan


def _sets(plan: AdaptPlan, control_set: str | None = None) -> set[tuple[str, str, Any, Any]]:
    """The edits as (key below the control set, value, old, new), of one control set or all."""
    return {(e.key.split("\\", 1)[1].lower(), e.value, e.old, e.new) for e in plan.edits
            if control_set is None or e.key.split("\\", 1)[0] == control_set}


def test_windows_facts_come_from_the_hive(win7: tuple[Path, Dump], win81: Path) -> None:
    w7 = windows_info(Hive.open(win7[0]))
    assert (w7.family, w7.arch, w7.control_sets) == ("7", "x86", ("ControlSet001", "ControlSet002"))
    w81 = windows_info(Hive.open(win81))
    assert (w81.family, w81.arch, w81.control_sets) == ("8+", "amd64", ("ControlSet001",))


@pytest.mark.parametrize("ctl,expected", [
    (AHCI, {("services\\msahci", "Start", 3, 0),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2922", "Service", None, "msahci"),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2922", "ClassGUID", None, HDC_CLASS),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2922&cc_0106", "Service", None, "msahci"),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2922&cc_0106", "ClassGUID", None, HDC_CLASS)}),
    (IDE, {("services\\pciide", "Start", 3, 0),
           ("control\\criticaldevicedatabase\\pci#ven_8086&dev_7010&cc_0101", "Service", None, "intelide"),
           ("control\\criticaldevicedatabase\\pci#ven_8086&dev_7010&cc_0101", "ClassGUID", None, HDC_CLASS)}),
    (RAID, {("services\\iastorv", "Start", 3, 0),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2822", "Service", None, "iaStorV"),
            ("control\\criticaldevicedatabase\\pci#ven_8086&dev_2822", "ClassGUID", None, SCSI_CLASS)}),
    # the hive knows this LSI device (PCI#VEN_1000&DEV_0072 -> LSI_SAS2): that entry decides the driver
    (SAS, {("services\\lsi_sas2", "Start", 3, 0), ("services\\megasas", "Start", 3, 0),
           ("control\\criticaldevicedatabase\\pci#ven_1000&dev_0072&cc_0107", "Service", None, "LSI_SAS2"),
           ("control\\criticaldevicedatabase\\pci#ven_1000&dev_0072&cc_0107", "ClassGUID", None, SCSI_CLASS)}),
], ids=["ahci", "ide", "intel-raid", "sas"])
def test_windows7_exactly_the_intended_values_change(win7: tuple[Path, Dump], tmp_path: Path, ctl: Controller,
                                                      expected: set[tuple[str, str, Any, Any]]) -> None:
    src, before = win7
    plan = _adapt(src, tmp_path / "SYSTEM", ctl)
    # every control set Select names (Current 001, LastKnownGood 002) gets the same changes
    for cs in ("ControlSet001", "ControlSet002"):
        assert _sets(plan, cs) == expected
    assert len(plan.edits) == 2 * len(expected) and not plan.problems
    assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)


def test_windows7_class_only_ahci_changes_only_the_service(win7: tuple[Path, Dump], tmp_path: Path) -> None:
    """--controller ahci on a disk file: no PCI ids; PCI#CC_010601 -> msahci is already there."""
    src, before = win7
    plan = _adapt(src, tmp_path / "SYSTEM", Controller("ahci", "given"))
    assert _sets(plan) == {("services\\msahci", "Start", 3, 0)}
    assert any("no CriticalDeviceDatabase entry for the device itself" in n for n in plan.notes)
    assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)


def test_windows7_nvme_refused_without_driver_and_installed_with_one(win7: tuple[Path, Dump], tmp_path: Path) -> None:
    src, before = win7
    with pytest.raises(UnsupportedError, match="no inbox NVMe driver: give one with --drivers DIR"):
        plan_adapt(Hive.open(src), NVME)
    folder = driver_folder(tmp_path / "drv")
    driver = find_device(Inf(folder / "exstor.inf"), windows_info(Hive.open(src)).target, NVME.ids)
    assert driver is not None and driver.files[0][1].parent.name == "x86"  # a 32-bit Windows takes x86 files
    plan = _adapt(src, tmp_path / "SYSTEM", NVME, driver=driver)
    image = "\\SystemRoot\\System32\\drivers\\"
    cdd = "control\\criticaldevicedatabase\\"
    assert _sets(plan) == {
        ("services\\exstor", "Type", None, 1), ("services\\exstor", "Start", None, 0),
        ("services\\exstor", "ErrorControl", None, 1), ("services\\exstor", "ImagePath", None, image + "exstor.sys"),
        ("services\\exstor", "Group", None, "SCSI Miniport"),
        ("services\\exfilt", "Type", None, 1), ("services\\exfilt", "Start", None, 3),
        ("services\\exfilt", "ErrorControl", None, 1), ("services\\exfilt", "ImagePath", None, image + "exfilt.sys"),
        ("services\\exfilt", "Group", None, "PnP Filter"),
        *((cdd + i, v, None, n) for i in ("pci#ven_1234&dev_5678", "pci#ven_1234&dev_5678&cc_0108",
                                          "pci#ven_1234&dev_5678&subsys_00011234")
          for v, n in (("Service", "exstor"), ("ClassGUID", SCSI_CLASS)))}
    after = assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)
    assert after["controlset002\\services\\exstor"]["imagepath"][0] == RegType.EXPAND_SZ


def test_windows81_storahci_and_stornvme_with_start_override(win81: Path, tmp_path: Path) -> None:
    # As a Windows installed in IDE mode has it: storahci disabled, also through StartOverride.
    hive = Hive.open(win81)
    w = HiveWriter(hive, clock=lambda: CLOCK)
    w.set_value("ControlSet001\\Services\\storahci", "Start", RegType.DWORD, 3)
    w.set_value(w.ensure_key("ControlSet001\\Services\\storahci\\StartOverride"), "0", RegType.DWORD, 3)
    src = tmp_path / "SYSTEM_ide"
    src.write_bytes(w.commit())
    before = dump(src)
    ahci = _adapt(src, tmp_path / "SYSTEM_ahci", Controller("ahci", "given"))
    assert _sets(ahci) == {("services\\storahci", "Start", 3, 0), ("services\\storahci\\startoverride", "0", 3, 0)}
    assert_only_edits(before, tmp_path / "SYSTEM_ahci", ahci.edits)
    nvme = _adapt(src, tmp_path / "SYSTEM_nvme", NVME)
    assert _sets(nvme) == {("services\\stornvme\\startoverride", "0", 3, 0)}  # Start is 0 already
    assert_only_edits(before, tmp_path / "SYSTEM_nvme", nvme.edits)
    assert not any("criticaldevicedatabase" in e.key.lower() for e in ahci.edits + nvme.edits)


def test_windows10_sample_b_has_ahci_disabled_by_start_override(tmp_path: Path) -> None:
    """``dirty/regipy_SYSTEM_B`` as Windows left it: storahci Start=0 but StartOverride\\0 = 3 (disabled)."""
    src = tmp_path / "SYSTEM_B"
    src.write_bytes(lzma.decompress(shared_fixture("hives/dirty/regipy_SYSTEM_B/SYSTEM_B.xz").read_bytes()))
    make_clean(src)  # test-only: its logs are left out here (their replay is hivefiles' business)
    before = dump(src)
    for ctl, expected in ((Controller("ahci", "given"), {("services\\storahci\\startoverride", "0", 3, 0)}),
                          (RAID, {("services\\iastorv\\startoverride", "0", 3, 0)})):
        plan = _adapt(src, tmp_path / f"SYSTEM_{ctl.kind}", ctl)
        assert _sets(plan) == expected and not plan.problems
        assert_only_edits(before, tmp_path / f"SYSTEM_{ctl.kind}", plan.edits)
