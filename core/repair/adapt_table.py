"""What each kind of disk controller needs from Windows at boot: the one table `rescue adapt` uses.

For each kind: its PCI class code (base class 0x01, mass storage, and the subclass; Microsoft's
"Identifiers for PCI Devices" and the PCI Code and ID Assignment specification, named in BOOT.md),
the device setup class Windows files it under, and the inbox drivers (service names) that serve it,
on Windows 7 and on Windows 8 and later. A driver is started at boot by ``Start=0`` in its service key;
Windows 7 finds the driver of a boot disk's controller it has never seen in
``Control\\CriticalDeviceDatabase`` (keys named after the device's hardware and compatible ids, ``\\``
replaced by ``#``, with ``Service`` and ``ClassGUID``); Windows 8 and later have no such database and
keep a per-configuration ``StartOverride`` subkey whose non-zero values disable a boot driver.
"""

from __future__ import annotations

from dataclasses import dataclass

HDC_CLASS = "{4D36E96A-E325-11CE-BFC1-08002BE10318}"  # "IDE ATA/ATAPI controllers" (hdc)
SCSI_CLASS = "{4D36E97B-E325-11CE-BFC1-08002BE10318}"  # "Storage controllers" (SCSIAdapter)


@dataclass(frozen=True)
class Kind:
    name: str
    class_code: int  # base class << 8 | subclass (0x0106: SATA)
    prog_if: int | None  # the programming interface that identifies the kind (AHCI 1.0: 0x01), if any
    class_guid: str
    win7: tuple[str, ...]  # inbox services set to Start=0 on Windows 7
    win8: tuple[str, ...]  # the same on Windows 8 and later
    # The service a CriticalDeviceDatabase entry of a new device names on Windows 7, None when no
    # inbox driver serves every device of the kind (SAS HBAs, NVMe): then only an entry the hive
    # already has for that device, or a driver from --drivers, can name one.
    win7_cdd: str | None
    # Whether the class-code-only id (``PCI#CC_0106``) is a generic entry Windows 7 itself uses.
    generic_class_entry: bool


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("ahci", 0x0106, 0x01, HDC_CLASS, ("msahci",), ("storahci",), "msahci", True),
    # MergeIDE's set: the PCI IDE bus drivers and the ATA port driver, whatever the chipset.
    Kind("ide", 0x0101, None, HDC_CLASS, ("atapi", "intelide", "pciide"), ("atapi", "intelide", "pciide"),
         "pciide", True),
    Kind("intel-raid", 0x0104, None, SCSI_CLASS, ("iaStorV",), ("iaStorAV", "iaStorV"), "iaStorV", False),
    Kind("nvme", 0x0108, 0x02, SCSI_CLASS, (), ("stornvme",), None, False),
    Kind("sas", 0x0107, None, SCSI_CLASS, ("LSI_SAS", "LSI_SAS2", "megasas"),
         ("LSI_SAS", "LSI_SAS2", "LSI_SAS3", "megasas"), None, False),
)}

# IDE controllers whose vendor has its own inbox IDE driver on Windows 7 (mshdc.inf): PCI vendor id ->
# service. Everything else is served by pciide.
IDE_VENDOR_DRIVERS = {0x8086: "intelide", 0x1022: "amdide", 0x1106: "viaide", 0x1095: "cmdide", 0x10B9: "aliide"}

# Windows 7 has no inbox NVMe driver (one came with an update for Windows 7 SP1 later, not in a plain
# install): the refusal names what to give.
NVME_DRIVER_HINT = ("Windows 7 has no inbox NVMe driver: give one with --drivers DIR (a folder holding the "
                    "driver's .inf, .sys and .cat: the NVMe vendor's Windows 7 driver, or Microsoft's stornvme "
                    "from the Windows 7 NVMe update)")


def kind_for_class(class_code: int, vendor: int) -> str | None:
    """The kind of a PCI function from its 24-bit class code (0x010601) and vendor, None when no kind fits."""
    base_sub, prog_if = class_code >> 8, class_code & 0xFF
    if base_sub == 0x0104:
        return "intel-raid" if vendor == 0x8086 else None
    for kind in KINDS.values():
        if kind.class_code == base_sub and (kind.prog_if is None or kind.prog_if == prog_if):
            return kind.name
    return None


def pci_ids(vendor: int | None, device: int | None, subsystem: int | None, class_code: int | None) -> list[str]:
    """The device's PCI hardware ids then compatible ids, most specific first, as Windows forms them."""
    ids: list[str] = []
    if vendor is not None and device is not None:
        vd = f"PCI\\VEN_{vendor:04X}&DEV_{device:04X}"
        if subsystem is not None:
            ids.append(f"{vd}&SUBSYS_{subsystem:08X}")
        ids.append(vd)
        if class_code is not None:
            ids += [f"{vd}&CC_{class_code:06X}", f"{vd}&CC_{class_code >> 8:04X}"]
    if class_code is not None:
        if vendor is not None:
            ids += [f"PCI\\VEN_{vendor:04X}&CC_{class_code:06X}", f"PCI\\VEN_{vendor:04X}&CC_{class_code >> 8:04X}"]
        ids += [f"PCI\\CC_{class_code:06X}", f"PCI\\CC_{class_code >> 8:04X}"]
    return ids
