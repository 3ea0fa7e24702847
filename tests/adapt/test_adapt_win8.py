"""`plan_adapt` with ``--drivers`` on Windows 8 and later, on the real SYSTEM samples (copies), every key
and value compared before and after through hivex.

``regipy_SYSTEM_2`` is Windows 8.1 (its ``DriverDatabase\\Version`` is 0x06030000 and its inbox driver
packages are 6.3.9600.x) and ``dirty/regipy_SYSTEM_B`` Windows 10 (0x0A000000, packages 10.0.16299.x).
What differs from Windows 7: no CriticalDeviceDatabase entry is written, a ``StartOverride`` of the
driver's own service is cleared, the INF's decorations are matched against the version the hive names,
and whether the driver store (``DriverDatabase\\DeviceIds``) serves the controller decides between a note
and a problem (the store is read, never written).
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import pytest

from core.disk.controller import Controller
from core.drivers.inf import DriverChoice, Inf, find_device
from core.regf.hive import Hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from core.repair.adapt import AdaptPlan, driver_store_matches, windows_info
from tests.adapt.drivers import NVME_DEV, NVME_VEN, driver_folder
from tests.adapt.hive_diff import assert_only_edits, dump
from tests.adapt.test_adapt_hive import CLOCK, _adapt, _sets
from tests.conftest import shared_fixture
from tests.regf.regf_helpers import make_clean

IMAGE = "\\SystemRoot\\System32\\drivers\\"
# The ExampleStor NVMe device without the OEM's subsystem id (so the decorations decide between its
# models sections), and the same device behind a SAS function: no INF of the driver store serves its ids.
NVME = Controller("nvme", "detected", "0000:01:00.0", 0x010802, NVME_VEN, NVME_DEV, None)
SAS_1234 = Controller("sas", "detected", "0000:03:00.0", 0x010700, NVME_VEN, NVME_DEV, None)


def _hive(tmp: Path, rel: str) -> Path:
    out = tmp / Path(rel).name.removesuffix(".xz")
    out.write_bytes(lzma.decompress(shared_fixture(f"hives/{rel}").read_bytes()))
    make_clean(out)  # test-only: the samples are dirty and their logs are hivefiles' business
    return out


@pytest.fixture(scope="module")
def win81(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _hive(tmp_path_factory.mktemp("w81"), "regipy_SYSTEM_2.xz")


@pytest.fixture(scope="module")
def win10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _hive(tmp_path_factory.mktemp("w10"), "dirty/regipy_SYSTEM_B/SYSTEM_B.xz")


def _driver(tmp: Path, hive: Path, ctl: Controller) -> DriverChoice:
    folder = driver_folder(tmp / "drv")
    c = find_device(Inf(folder / "exstor.inf"), windows_info(Hive.open(hive)).target, ctl.ids)
    assert c is not None
    return c


def _service(name: str, group: str) -> set[tuple[str, str, Any, Any]]:
    key = f"services\\{name}"
    return {(key, "Type", None, 1), (key, "Start", None, 0 if name == "exstor" else 3),
            (key, "ErrorControl", None, 1), (key, "ImagePath", None, f"{IMAGE}{name}.sys"), (key, "Group", None, group)}


def test_the_version_the_hive_names_picks_the_models_section(win81: Path, win10: Path, tmp_path: Path) -> None:
    w81, w10 = windows_info(Hive.open(win81)), windows_info(Hive.open(win10))
    assert (w81.family, w81.version, w81.arch) == ("8+", (6, 3), "amd64")
    assert (w10.family, w10.version, w10.arch) == ("8+", (10, 0), "amd64")
    c81, c10 = _driver(tmp_path / "a", win81, NVME), _driver(tmp_path / "b", win10, NVME)
    assert (c81.models_section, c81.install_section) == ("ExampleModels.NTamd64", "exstor_Inst")
    assert (c10.models_section, c10.install_section) == ("ExampleModels.NTamd64.10.0", "exstor_Inst10.NT")
    assert [s.name for s in c81.services] == ["exstor", "exfilt"] and [s.name for s in c10.services] == ["exstor"]


@pytest.mark.parametrize("sample", ["win81", "win10"])
def test_driver_for_a_controller_the_store_serves(sample: str, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    """NVMe: the store serves PCI\\CC_010802 with stornvme.inf; the driver's files and services are
    written as on Windows 7, without CriticalDeviceDatabase, and the note says which driver Windows uses."""
    src: Path = request.getfixturevalue(sample)
    before = dump(src)
    driver = _driver(tmp_path, src, NVME)
    plan = _adapt(src, tmp_path / "SYSTEM", NVME, driver=driver)
    expected = _service("exstor", "SCSI Miniport") | {("services\\stornvme\\startoverride", "0", 3, 0)}
    if sample == "win81":
        expected |= _service("exfilt", "PnP Filter")
    assert _sets(plan) == expected and not plan.problems
    assert any("serves PCI\\CC_010802 with stornvme.inf" in n and "exstor.inf, is installed beside it" in n
               for n in plan.notes), plan.notes
    after = assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)
    assert after["controlset001\\services\\exstor"]["imagepath"][0] == RegType.EXPAND_SZ
    assert not any("criticaldevicedatabase" in k for k in after.keys() - before.keys())


def test_driver_for_a_controller_the_store_does_not_serve_is_a_problem(win10: Path, tmp_path: Path) -> None:
    before = dump(win10)
    assert driver_store_matches(Hive.open(win10), SAS_1234.ids) == []
    driver = _driver(tmp_path, win10, SAS_1234)
    plan = _adapt(win10, tmp_path / "SYSTEM", SAS_1234, driver=driver)
    ours = _service("exstor", "SCSI Miniport")  # Windows 10: the NTamd64.10.0 install, one service
    assert ours <= _sets(plan)
    # the rest: the inbox SAS drivers started at boot, nothing else
    rest = _sets(plan) - ours
    assert rest and all(k.split("\\")[1] in ("lsi_sas", "lsi_sas2", "lsi_sas3", "megasas") and
                        (v == "Start" or k.endswith("startoverride")) and new == 0 for k, v, _, new in rest), rest
    assert len(plan.problems) == 1
    problem = plan.problems[0]
    assert "no driver in this Windows' driver store serves PCI\\VEN_1234&DEV_5678" in problem
    assert "exstor is installed to start at boot" in problem and "dism /image:W:\\ /add-driver" in problem
    assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)


def test_the_drivers_own_start_override_is_cleared(win10: Path, tmp_path: Path) -> None:
    """A service the Windows has from an earlier install of the same driver, disabled by StartOverride."""
    w = HiveWriter(Hive.open(win10), clock=lambda: CLOCK)
    key = w.ensure_key("ControlSet001\\Services\\exstor")
    for name, value in (("Type", 1), ("Start", 3), ("ErrorControl", 1)):
        w.set_value(key, name, RegType.DWORD, value)
    w.set_value(key, "ImagePath", RegType.EXPAND_SZ, "System32\\drivers\\exstor.sys")
    w.set_value(w.ensure_key("ControlSet001\\Services\\exstor\\StartOverride"), "0", RegType.DWORD, 3)
    src = tmp_path / "SYSTEM_old_exstor"
    src.write_bytes(w.commit())
    before = dump(src)
    plan = _adapt(src, tmp_path / "SYSTEM", NVME, driver=_driver(tmp_path, src, NVME))
    assert _sets(plan) == {("services\\exstor", "Start", 3, 0), ("services\\exstor\\startoverride", "0", 3, 0),
                           ("services\\exstor", "ImagePath", "System32\\drivers\\exstor.sys", IMAGE + "exstor.sys"),
                           ("services\\exstor", "Group", None, "SCSI Miniport"),
                           ("services\\stornvme\\startoverride", "0", 3, 0)}
    assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)


def test_inbox_only_a_detected_controller_the_store_does_not_serve_is_a_problem(win10: Path, tmp_path: Path) -> None:
    raid = Controller("intel-raid", "detected", "0000:00:1f.2", 0x010400, 0x8086, 0x9999, None)
    before = dump(win10)
    plan: AdaptPlan = _adapt(win10, tmp_path / "SYSTEM", raid)
    assert _sets(plan) == {("services\\iastorv\\startoverride", "0", 3, 0)}
    assert plan.problems == [
        "no driver in this Windows' driver store serves PCI\\VEN_8086&DEV_9999, and Windows 8 and later find a new "
        "boot controller's driver only there (not through services alone), which adapt does not write: add the "
        "driver to the store too (from Windows PE: dism /image:W:\\ /add-driver /driver:DIR), or Windows will "
        "stop with 0x7B"]
    assert_only_edits(before, tmp_path / "SYSTEM", plan.edits)
    # named with --controller, no ids to check: a note, not a problem
    given = _adapt(win10, tmp_path / "SYSTEM_given", Controller("intel-raid", "given"))
    assert not given.problems and any("was not checked" in n for n in given.notes)
