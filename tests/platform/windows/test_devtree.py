"""The controller of a Windows disk (WinPE) from the device tree, as `rescue adapt` detects it on Linux.

`FakeTree` answers the cfgmgr32 walk with trees shaped as Windows builds them: an AHCI disk under its
PCI function (storport's SCSI\\Disk child), an IDE disk under an IDE channel, an NVMe disk, a USB stick
under a hub, and a loop a damaged tree could make. The ids are those Windows forms for a PCI function
(hardware ids then compatible ids, CC_ with the 24-bit class code). Nothing here needs root.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from core.disk.controller import Controller, detect_controller, resolve_controller
from core.errors import UsageError
from core.platform.windows import devtree
from core.repair.adapt_table import pci_ids


def pci_function_ids(vendor: int, device: int, subsys: int, rev: int, cc: int) -> list[str]:
    """HardwareID then CompatibleIDs of a PCI function, in Windows' order."""
    vd = f"PCI\\VEN_{vendor:04X}&DEV_{device:04X}"
    hardware = [f"{vd}&SUBSYS_{subsys:08X}&REV_{rev:02X}", f"{vd}&SUBSYS_{subsys:08X}",
                f"{vd}&CC_{cc:06X}", f"{vd}&CC_{cc >> 8:04X}"]
    compatible = [f"{vd}&REV_{rev:02X}", vd, f"PCI\\VEN_{vendor:04X}&CC_{cc:06X}",
                  f"PCI\\VEN_{vendor:04X}&CC_{cc >> 8:04X}", f"PCI\\VEN_{vendor:04X}", f"PCI\\CC_{cc:06X}",
                  f"PCI\\CC_{cc >> 8:04X}"]
    return hardware + compatible


AHCI_PCI = "PCI\\VEN_8086&DEV_2922&SUBSYS_B0051458&REV_02\\3&21436425&0&FA"
IDE_PCI = "PCI\\VEN_8086&DEV_2920&SUBSYS_B0021458&REV_02\\3&21436425&0&F9"
NVME_PCI = "PCI\\VEN_144D&DEV_A808&SUBSYS_A801144D&REV_00\\4&2B2C7E83&0&00E8"
XHCI_PCI = "PCI\\VEN_8086&DEV_A36D&SUBSYS_86941043&REV_10\\3&11583659&0&A0"


@dataclass
class FakeTree:
    """Interfaces (path -> disk number, instance) and nodes (instance -> parent, ids, location)."""

    interfaces: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    node_ids: dict[str, list[str]] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def disk_interfaces(self) -> list[str]:
        return list(self.interfaces)

    def device_number(self, interface: str) -> int | None:
        return self.interfaces[interface][0]

    def instance_id(self, interface: str) -> str | None:
        return self.interfaces[interface][1]

    def parent(self, instance_id: str) -> str | None:
        self.asked.append(instance_id)
        return self.parents.get(instance_id)

    def ids(self, instance_id: str) -> list[str]:
        return self.node_ids.get(instance_id, [])

    def location(self, instance_id: str) -> str:
        return self.locations.get(instance_id, "")


def machine() -> FakeTree:
    t = FakeTree()
    # PhysicalDrive0: SATA disk in AHCI mode (storahci/msahci: the disk is storport's SCSI\Disk child).
    sata = "SCSI\\DISK&VEN_&PROD_ST500DM002-1BD14\\4&2D8C5D5D&0&000000"
    t.interfaces["\\\\?\\scsi#disk&ven_&prod_st500dm002#4&2d8c5d5d&0&000000#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}"] \
        = (0, sata)
    t.parents[sata] = AHCI_PCI
    t.parents[AHCI_PCI] = "ACPI\\PNP0A08\\0"
    t.parents["ACPI\\PNP0A08\\0"] = "HTREE\\ROOT\\0"
    t.node_ids[AHCI_PCI] = pci_function_ids(0x8086, 0x2922, 0xB0051458, 2, 0x010601)
    t.locations[AHCI_PCI] = "PCI bus 0, device 31, function 2"
    # PhysicalDrive1: NVMe (stornvme).
    nvme = "SCSI\\DISK&VEN_NVME&PROD_SAMSUNG_SSD_970\\5&1B5F7A0&0&000000"
    t.interfaces["\\\\?\\scsi#disk&ven_nvme&prod_samsung_ssd_970#5&1b5f7a0&0&000000#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}"] \
        = (1, nvme)
    t.parents[nvme] = NVME_PCI
    t.node_ids[NVME_PCI] = pci_function_ids(0x144D, 0xA808, 0xA801144D, 0, 0x010802)
    t.locations[NVME_PCI] = "PCI bus 61, device 0, function 0"
    # PhysicalDrive2: IDE (atapi / intelide): disk, then the IDE channel, then the PCI function.
    ide = "IDE\\DISKST3500418AS_____________________________CC38____\\5&1A2B3C4D&0&0.0.0"
    channel = "PCIIDE\\IDECHANNEL\\4&1F7DBC9F&0&0"
    t.interfaces["\\\\?\\ide#diskst3500418as#5&1a2b3c4d&0&0.0.0#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}"] = (2, ide)
    t.parents[ide] = channel
    t.parents[channel] = IDE_PCI
    t.node_ids[IDE_PCI] = pci_function_ids(0x8086, 0x2920, 0xB0021458, 2, 0x01018A)
    # PhysicalDrive3: a USB stick: USBSTOR disk, USB device, root hub, the xHCI PCI function.
    stick = "USBSTOR\\DISK&VEN_SANDISK&PROD_ULTRA&REV_1.00\\4C530001230818116284&0"
    usb = "USB\\VID_0781&PID_5581\\4C530001230818116284"
    hub = "USB\\ROOT_HUB30\\4&2A0F8B5&0&0"
    t.interfaces["\\\\?\\usbstor#disk&ven_sandisk&prod_ultra#4c530001230818116284&0#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}"] \
        = (3, stick)
    t.parents.update({stick: usb, usb: hub, hub: XHCI_PCI})
    t.node_ids[XHCI_PCI] = pci_function_ids(0x8086, 0xA36D, 0x86941043, 0x10, 0x0C0330)
    # An interface that cannot be asked (a card reader without a card) comes first and is skipped.
    t.interfaces = {"\\\\?\\usbstor#disk&ven_generic&prod_sd#x&0#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}":
                    (None, None), **t.interfaces}
    return t


@pytest.fixture
def tree() -> Iterator[FakeTree]:
    t = machine()
    previous = devtree.install(t)
    try:
        yield t
    finally:
        devtree.install(previous)


def test_ahci_disk(tree: FakeTree) -> None:
    c = detect_controller("\\\\.\\PhysicalDrive0")
    assert c == Controller("ahci", "detected", "00:1f.2", 0x010601, 0x8086, 0x2922, 0xB0051458)
    # The ids adapt matches drivers against are those Windows itself gave the function.
    assert c is not None and c.ids == pci_ids(0x8086, 0x2922, 0xB0051458, 0x010601)
    assert set(c.ids) <= set(tree.node_ids[AHCI_PCI])
    assert tree.asked == ["SCSI\\DISK&VEN_&PROD_ST500DM002-1BD14\\4&2D8C5D5D&0&000000"]  # stops at PCI


def test_nvme_ide_and_usb_disks(tree: FakeTree) -> None:
    nvme = detect_controller("\\\\.\\PhysicalDrive1")
    assert nvme is not None and (nvme.kind, nvme.vendor, nvme.device, nvme.class_code, nvme.pci_address) == \
        ("nvme", 0x144D, 0xA808, 0x010802, "3d:00.0")
    ide = detect_controller("\\\\.\\PHYSICALDRIVE2")  # Windows names are case-insensitive
    assert ide is not None and (ide.kind, ide.class_code, ide.subsystem) == ("ide", 0x01018A, 0xB0021458)
    assert ide.pci_address == IDE_PCI  # no location information: the instance id names it
    usb = detect_controller("\\\\?\\PhysicalDrive3")
    assert usb is not None and usb.kind is None and usb.class_code == 0x0C0330  # a USB host, no adapt kind
    with pytest.raises(UsageError, match="of no kind adapt knows"):
        resolve_controller("\\\\.\\PhysicalDrive3", None)
    given = resolve_controller("\\\\.\\PhysicalDrive3", "ahci")
    assert (given.kind, given.source, given.vendor) == ("ahci", "given", 0x8086)


def test_absent_disk_and_damaged_trees(tree: FakeTree) -> None:
    assert detect_controller("\\\\.\\PhysicalDrive9") is None
    with pytest.raises(UsageError, match="--controller"):
        resolve_controller("\\\\.\\PhysicalDrive9", None)
    # A loop in the tree ends the walk (bounded), without a controller.
    a, b = "SCSI\\DISK&VEN_X\\1", "SCSI\\ADAPTER\\2"
    tree.interfaces["\\\\?\\loop"] = (7, a)
    tree.parents.update({a: b, b: a})
    assert detect_controller("\\\\.\\PhysicalDrive7") is None
    assert len([x for x in tree.asked if x in (a, b)]) == devtree.MAX_DEPTH
    # A PCI function whose ids carry no class code is not guessed at.
    tree.node_ids[NVME_PCI] = [i for i in tree.node_ids[NVME_PCI] if "CC_" not in i]
    assert detect_controller("\\\\.\\PhysicalDrive1") is None


def test_paths_that_are_not_windows_disks() -> None:
    for path in ("/dev/sda", "\\\\.\\C:", "\\\\.\\PhysicalDrive", "C:\\disk.img", "\\\\.\\PhysicalDrive1x"):
        assert devtree.disk_number(path) is None, path
    assert devtree.disk_number("\\\\.\\PhysicalDrive12") == 12
