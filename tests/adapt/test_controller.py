"""Controller detection from sysfs on this machine's real disks, and what adapt asks when there is none."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from core.disk.controller import Controller, detect_controller, resolve_controller
from core.errors import UsageError
from core.repair.adapt_table import kind_for_class
from tests.conftest import need_root_tools

PCI = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def _pci_disks() -> list[tuple[str, str]]:
    """(/dev node, deepest PCI function on its sysfs path) of every whole disk here that has one."""
    out = []
    for name in sorted(os.listdir("/sys/block")):
        real = os.path.realpath(f"/sys/block/{name}")
        funcs = [p for p in real.split("/") if PCI.fullmatch(p)]
        if funcs and os.path.exists(f"/dev/{name}"):
            out.append((f"/dev/{name}", funcs[-1]))
    return out


def test_kinds_from_class_codes() -> None:
    assert kind_for_class(0x010601, 0x8086) == "ahci"
    assert kind_for_class(0x010600, 0x8086) is None  # vendor-specific SATA, not AHCI
    assert kind_for_class(0x010180, 0x8086) == "ide"
    assert kind_for_class(0x010802, 0x144D) == "nvme"
    assert kind_for_class(0x010700, 0x1000) == "sas"
    assert kind_for_class(0x010400, 0x8086) == "intel-raid"
    assert kind_for_class(0x010400, 0x1000) is None  # another vendor's RAID: no inbox kind
    assert kind_for_class(0x018000, 0x1AF4) is None  # virtio block


def test_detected_controller_is_the_pci_function_above_the_disk() -> None:
    disks = _pci_disks()
    if not disks:
        pytest.skip("no disk on a PCI controller on this machine (containers may have none)")
    for node, func in disks:
        ctl = detect_controller(node)
        assert ctl is not None and ctl.source == "detected" and ctl.pci_address == func, (node, ctl)
        # udev's own record of the device path names the same function
        res = subprocess.run(["udevadm", "info", "-q", "property", "-n", node], capture_output=True, text=True,
                             check=False)
        if res.returncode == 0 and "DEVPATH=" in res.stdout:
            assert f"/{func}/" in res.stdout
        attrs = {a: int(Path(f"/sys/bus/pci/devices/{func}/{a}").read_text(), 16)
                 for a in ("class", "vendor", "device", "subsystem_vendor", "subsystem_device")}
        assert (ctl.class_code, ctl.vendor, ctl.device) == (attrs["class"], attrs["vendor"], attrs["device"])
        assert ctl.subsystem == attrs["subsystem_device"] << 16 | attrs["subsystem_vendor"]
        assert ctl.kind == kind_for_class(attrs["class"], attrs["vendor"])
        assert ctl.ids[0] == f"PCI\\VEN_{attrs['vendor']:04X}&DEV_{attrs['device']:04X}&SUBSYS_{ctl.subsystem:08X}"
        assert ctl.as_json()["pci_address"] == func
        if ctl.kind is None:  # e.g. virtio: adapt asks for the kind instead of guessing
            with pytest.raises(UsageError, match="--controller"):
                resolve_controller(node, None)
        given = resolve_controller(node, "ahci")
        assert given.kind == "ahci" and given.source == "given" and given.pci_address == func


def test_disk_file_and_loop_device_have_no_controller(tmp_path: Path) -> None:
    need_root_tools("losetup")
    img = tmp_path / "disk.img"
    with img.open("wb") as f:
        f.truncate(1 << 20)
    assert detect_controller(str(img)) is None
    with pytest.raises(UsageError, match=r"not a disk on a PCI controller .* --controller ahci\|ide"):
        resolve_controller(str(img), None)
    assert resolve_controller(str(img), "nvme") == Controller("nvme", "given")
    assert Controller("nvme", "given").ids == ["PCI\\CC_010802", "PCI\\CC_0108"]
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True)
    dev = loop.stdout.strip()
    try:
        assert detect_controller(dev) is None
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
