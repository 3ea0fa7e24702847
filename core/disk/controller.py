"""The disk controller a block device hangs off, from sysfs: its PCI function, class code and ids.

On Windows (WinPE) the same facts come from the device tree (`core.platform.windows.devtree`); below is
how Linux gives them.

A disk's canonical sysfs path runs through the devices above it
(``/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/.../block/sda``,
``/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1``); the deepest PCI function on
that path is the controller. Its ``class``, ``vendor``, ``device``, ``subsystem_vendor`` and
``subsystem_device`` attributes are what Windows forms the device's hardware ids from. A disk file, a
loop device or a disk on a bus without PCI (USB behind a hub still has one) may have none: the caller then
asks for ``--controller``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError
from ..platform.windows import devtree
from ..repair.adapt_table import KINDS, kind_for_class, pci_ids
from .sysblock import read_attr, sysfs_dir, whole_disk

_PCI_FUNCTION = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")



@dataclass(frozen=True)
class Controller:
    """A disk controller: ``kind`` (adapt's name, None when no kind fits) and, when detected, its PCI ids."""

    kind: str | None
    source: str  # "detected" or "given" (--controller)
    pci_address: str | None = None
    class_code: int | None = None  # 24 bits: base class, subclass, programming interface
    vendor: int | None = None
    device: int | None = None
    subsystem: int | None = None  # subsystem device << 16 | subsystem vendor, as in SUBSYS_ddddvvvv

    @property
    def ids(self) -> list[str]:
        """Windows' hardware ids then compatible ids for it (``PCI\\VEN_8086&DEV_2922&SUBSYS_...``).

        A controller only named (--controller, nothing detected) has the class-code ids its kind
        implies: ``PCI\\CC_010802``, ``PCI\\CC_0108`` for nvme (the 6-digit one only where the kind fixes
        the programming interface), which a driver's INF may list as compatible ids.
        """
        if self.class_code is None and self.kind in KINDS:
            k = KINDS[self.kind]
            generic = [f"PCI\\CC_{k.class_code:04X}{k.prog_if:02X}"] if k.prog_if is not None else []
            return generic + [f"PCI\\CC_{k.class_code:04X}"]
        return pci_ids(self.vendor, self.device, self.subsystem, self.class_code)

    def describe(self) -> str:
        if self.pci_address is None:
            return f"{self.kind} (given with --controller; no PCI ids known)"
        ids = f"PCI {self.pci_address}, class {self.class_code or 0:06x}, vendor {self.vendor or 0:04x}, " \
              f"device {self.device or 0:04x}"
        if self.subsystem is not None:
            ids += f", subsystem {self.subsystem:08x}"
        return f"{self.kind or 'unknown kind'} ({self.source}; {ids})"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ids"] = self.ids
        return out


def _hex(directory: str, name: str) -> int | None:
    text = read_attr(directory, name)
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _windows_controller(number: int) -> Controller | None:
    """PhysicalDrive``number``'s controller from Windows' device tree (WinPE), as sysfs gives it on Linux."""
    tree = devtree.current_tree()
    instance = devtree.controller_instance(tree, number)
    if instance is None:
        return None
    address, class_code, vendor, device, subsystem = devtree.pci_facts(instance, tree.ids(instance),
                                                                       tree.location(instance))
    if class_code is None or vendor is None:
        return None
    return Controller(kind_for_class(class_code, vendor), "detected", address, class_code, vendor, device, subsystem)


def detect_controller(path: str) -> Controller | None:
    """The controller of block device ``path``; None for a file or a device with no PCI function above it."""
    number = devtree.disk_number(path)  # \\.\PhysicalDriveN: a Windows disk (WinPE)
    if number is not None:
        return _windows_controller(number)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not (st.st_mode & 0o170000 == 0o060000):
        return None
    directory = sysfs_dir(whole_disk(st.st_rdev))
    if directory is None:
        return None
    parts = directory.split("/")
    for i in range(len(parts), 0, -1):
        if not _PCI_FUNCTION.fullmatch(parts[i - 1]):
            continue
        func = "/".join(parts[:i])
        class_code, vendor = _hex(func, "class"), _hex(func, "vendor")
        if class_code is None or vendor is None:
            continue
        sub_vendor, sub_device = _hex(func, "subsystem_vendor"), _hex(func, "subsystem_device")
        subsystem = (sub_device << 16 | sub_vendor) if sub_vendor is not None and sub_device is not None else None
        return Controller(kind_for_class(class_code, vendor), "detected", parts[i - 1], class_code, vendor,
                          _hex(func, "device"), subsystem)
    return None


def resolve_controller(path: str, kind: str | None) -> Controller:
    """The controller adapt works for: detected from ``path``, ``kind`` (--controller) overriding its kind.

    A disk file (or a device without a PCI controller) has nothing to detect: ``kind`` is then required.
    """
    found = detect_controller(path)
    if kind is not None:
        if found is None:
            return Controller(kind, "given")
        return Controller(kind, "given", found.pci_address, found.class_code, found.vendor, found.device,
                          found.subsystem)
    if found is None:
        raise UsageError(detail=f"{path} is not a disk on a PCI controller (a disk file, loop or virtual device): "
                                f"name the controller with --controller {'|'.join(KINDS)}")
    if found.kind is None:
        raise UsageError(detail=f"the controller of {path} ({found.describe()}) is of no kind adapt knows: "
                                f"name it with --controller {'|'.join(KINDS)}")
    return found
