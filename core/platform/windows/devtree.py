"""The controller a Windows disk hangs off: from ``\\\\.\\PhysicalDriveN`` up the device tree to its PCI function.

What sysfs gives on Linux (`core.disk.controller`), Windows' Configuration Manager gives here. Every
device has an instance id (``PCI\\VEN_8086&DEV_2922&SUBSYS_B0051458&REV_02\\3&21436425&0&FA``) and a
parent. The disk's interface (class GUID_DEVINTERFACE_DISK) is matched to PhysicalDriveN by
IOCTL_STORAGE_GET_DEVICE_NUMBER, as Windows' own tools do; from the disk's instance the walk goes up
until an instance under the ``PCI`` enumerator, whatever is between (an IDE channel, a USB hub, a
storage adapter). That PCI function's hardware and compatible ids (``PCI\\VEN_8086&DEV_2922&CC_010601``,
...) carry vendor, device, subsystem and the 24-bit class code: the facts the adapt table needs.

The calls go through `DevTree` (cfgmgr32, plus kernel32 for the IOCTL), so tests walk a fake tree
shaped like the ones Windows builds for AHCI, IDE, NVMe and USB disks.
"""

from __future__ import annotations

import re
import sys
from typing import Protocol

from ...errors import FormatError, UnsupportedError
from .c_win import FILE_SHARE_READ, FILE_SHARE_WRITE
from .query import device_number as _query_number
from .seam import Slot, Win32Error, current

# How far up a walk goes: real trees are 3-6 levels from a disk to its controller (disk, adapter or
# channel, hub(s), PCI); a loop in a damaged tree must not hang the plan.
MAX_DEPTH = 16

_PHYSICAL_DRIVE = re.compile(r"\\\\[.?]\\PhysicalDrive(\d+)", re.IGNORECASE)
_PCI_ID = re.compile(r"PCI\\VEN_([0-9A-F]{4})&DEV_([0-9A-F]{4})(?:&SUBSYS_([0-9A-F]{8}))?", re.IGNORECASE)
_CLASS6 = re.compile(r"&CC_([0-9A-F]{6})(?:$|&)|^PCI\\CC_([0-9A-F]{6})$", re.IGNORECASE)
_LOCATION = re.compile(r"PCI bus (\d+), device (\d+), function (\d+)", re.IGNORECASE)


class DevTree(Protocol):
    """What the walk asks of Windows; failures answer empty (a device that vanished is not an error)."""

    def disk_interfaces(self) -> list[str]:
        """CM_Get_Device_Interface_ListW(GUID_DEVINTERFACE_DISK, present): the disks' interface paths."""
        ...

    def device_number(self, interface: str) -> int | None:
        """IOCTL_STORAGE_GET_DEVICE_NUMBER on the interface: N of PhysicalDriveN; None if it cannot be asked."""
        ...

    def instance_id(self, interface: str) -> str | None:
        """CM_Get_Device_Interface_PropertyW(DEVPKEY_Device_InstanceId): the device behind the interface."""
        ...

    def parent(self, instance_id: str) -> str | None:
        """CM_Locate_DevNodeW + CM_Get_Parent + CM_Get_Device_IDW: the parent's instance id."""
        ...

    def ids(self, instance_id: str) -> list[str]:
        """CM_Get_DevNode_Registry_PropertyW: its HardwareID then CompatibleIDs (REG_MULTI_SZ)."""
        ...

    def location(self, instance_id: str) -> str:
        """CM_DRP_LOCATION_INFORMATION (``PCI bus 0, device 31, function 2``), "" when absent."""
        ...


def disk_number(path: str) -> int | None:
    """N of a ``\\\\.\\PhysicalDriveN`` path, None for anything else."""
    m = _PHYSICAL_DRIVE.fullmatch(path)
    return int(m.group(1)) if m else None


def controller_instance(tree: DevTree, number: int) -> str | None:
    """The instance id of the PCI function above PhysicalDrive``number``; None when there is none."""
    for interface in tree.disk_interfaces():
        if tree.device_number(interface) != number:
            continue
        node = tree.instance_id(interface)
        for _ in range(MAX_DEPTH):
            if node is None:
                return None
            if node.upper().startswith("PCI\\"):
                return node
            node = tree.parent(node)
        return None
    return None


def pci_facts(instance: str, ids: list[str], location: str) -> tuple[str, int | None, int | None, int | None,
                                                                      int | None]:
    """(address, class code, vendor, device, subsystem) of a PCI function from its instance id and ids."""
    vendor = device = subsystem = class_code = None
    m = _PCI_ID.match(instance)
    if m:
        vendor, device = int(m.group(1), 16), int(m.group(2), 16)
        subsystem = int(m.group(3), 16) if m.group(3) else None
    for text in ids:
        c = _CLASS6.search(text)
        if c:
            class_code = int(c.group(1) or c.group(2), 16)
            break
    if subsystem is None:  # the instance id may omit it; the first hardware id never does when there is one
        for text in ids:
            s = _PCI_ID.match(text)
            if s and s.group(3):
                subsystem = int(s.group(3), 16)
                break
    loc = _LOCATION.search(location)
    address = f"{int(loc.group(1)):02x}:{int(loc.group(2)):02x}.{int(loc.group(3))}" if loc else instance
    return address, class_code, vendor, device, subsystem


def install(tree: DevTree | None) -> DevTree | None:
    """Use ``tree`` for every later walk (None: the real one again); returns what was in use."""
    return _slot.install(tree)


def current_tree() -> DevTree:
    return _slot.current()


def _device_number_via_kernel32(interface: str) -> int | None:
    api = current()
    try:
        handle = api.create_file(interface, 0, FILE_SHARE_READ | FILE_SHARE_WRITE, 0)
    except Win32Error:
        return None
    try:
        return _query_number(api, handle)
    except (Win32Error, FormatError):  # not a disk that answers (a reader without a card): not ours
        return None
    finally:
        api.close_handle(handle)


if sys.platform != "win32":

    def _real() -> DevTree:
        raise UnsupportedError(detail="the Windows device tree needs Windows (or a fake tree)")

else:
    import ctypes
    import uuid
    from ctypes import wintypes
    from typing import Any

    _CR_SUCCESS = 0
    _CR_BUFFER_SMALL = 0x1A
    _CM_DRP_HARDWAREID, _CM_DRP_COMPATIBLEIDS, _CM_DRP_LOCATION_INFORMATION = 0x02, 0x03, 0x0E
    _GUID_DEVINTERFACE_DISK = uuid.UUID("53f56307-b6bf-11d0-94f2-00a0c91efb8b")
    _DEVPKEY_INSTANCE_ID = (uuid.UUID("78c34fc8-104a-4aca-9ea4-524d52996e57"), 256)
    _ID_ROOM = 1024  # WCHARs: MAX_DEVICE_ID_LEN is 200; property strings stay far below this

    class _Guid(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_ubyte * 16)]

    class _PropKey(ctypes.Structure):
        _fields_ = [("fmtid", _Guid), ("pid", wintypes.ULONG)]

    def _guid(u: uuid.UUID) -> _Guid:
        g = _Guid()
        ctypes.memmove(g.bytes, u.bytes_le, 16)
        return g

    def _multi_sz(raw: bytes) -> list[str]:
        return [s for s in raw.decode("utf-16-le", "replace").split("\0") if s]

    class _CfgMgr32:
        """The ctypes binding of the few cfgmgr32 calls the walk makes."""

        def __init__(self) -> None:
            dll: Any = ctypes.WinDLL("cfgmgr32")
            self.dll = dll
            U, P, LPU = wintypes.ULONG, ctypes.c_void_p, ctypes.POINTER(wintypes.ULONG)
            for name, args in {
                "CM_Get_Device_Interface_List_SizeW": [LPU, P, wintypes.LPCWSTR, U],
                "CM_Get_Device_Interface_ListW": [P, wintypes.LPCWSTR, P, U, U],
                "CM_Get_Device_Interface_PropertyW": [wintypes.LPCWSTR, P, LPU, P, LPU, U],
                "CM_Locate_DevNodeW": [LPU, wintypes.LPCWSTR, U],
                "CM_Get_Parent": [LPU, U, U],
                "CM_Get_Device_IDW": [U, wintypes.LPWSTR, U, U],
                "CM_Get_DevNode_Registry_PropertyW": [U, U, LPU, P, LPU, U],
            }.items():
                fn = getattr(dll, name)
                fn.argtypes, fn.restype = args, wintypes.ULONG  # CONFIGRET

        def disk_interfaces(self) -> list[str]:
            guid = _guid(_GUID_DEVINTERFACE_DISK)
            for _ in range(4):  # the list may grow between the size and the list call: ask again
                size = wintypes.ULONG(0)
                if self.dll.CM_Get_Device_Interface_List_SizeW(ctypes.byref(size), ctypes.byref(guid), None, 0):
                    return []
                buf = ctypes.create_unicode_buffer(size.value + 1)
                cr = self.dll.CM_Get_Device_Interface_ListW(ctypes.byref(guid), None, buf, size.value + 1, 0)
                if cr == _CR_SUCCESS:
                    return _multi_sz(bytes(buf)[: 2 * (size.value + 1)])
                if cr != _CR_BUFFER_SMALL:
                    return []
            return []

        def device_number(self, interface: str) -> int | None:
            return _device_number_via_kernel32(interface)

        def instance_id(self, interface: str) -> str | None:
            key = _PropKey(_guid(_DEVPKEY_INSTANCE_ID[0]), _DEVPKEY_INSTANCE_ID[1])
            kind, size = wintypes.ULONG(0), wintypes.ULONG(2 * _ID_ROOM)
            buf = ctypes.create_string_buffer(size.value)
            if self.dll.CM_Get_Device_Interface_PropertyW(interface, ctypes.byref(key), ctypes.byref(kind), buf,
                                                          ctypes.byref(size), 0):
                return None
            return bytes(buf)[: size.value].decode("utf-16-le", "replace").split("\0", 1)[0] or None

        def _node(self, instance_id: str) -> int | None:
            node = wintypes.ULONG(0)
            return None if self.dll.CM_Locate_DevNodeW(ctypes.byref(node), instance_id, 0) else node.value

        def parent(self, instance_id: str) -> str | None:
            node = self._node(instance_id)
            up = wintypes.ULONG(0)
            if node is None or self.dll.CM_Get_Parent(ctypes.byref(up), node, 0):
                return None
            buf = ctypes.create_unicode_buffer(_ID_ROOM)
            return None if self.dll.CM_Get_Device_IDW(up.value, buf, _ID_ROOM, 0) else buf.value

        def _property(self, instance_id: str, which: int) -> bytes:
            node = self._node(instance_id)
            if node is None:
                return b""
            kind, size = wintypes.ULONG(0), wintypes.ULONG(4 * _ID_ROOM)
            buf = ctypes.create_string_buffer(size.value)
            if self.dll.CM_Get_DevNode_Registry_PropertyW(node, which, ctypes.byref(kind), buf,
                                                          ctypes.byref(size), 0):
                return b""
            return bytes(buf)[: size.value]

        def ids(self, instance_id: str) -> list[str]:
            return (_multi_sz(self._property(instance_id, _CM_DRP_HARDWAREID))
                    + _multi_sz(self._property(instance_id, _CM_DRP_COMPATIBLEIDS)))

        def location(self, instance_id: str) -> str:
            raw = self._property(instance_id, _CM_DRP_LOCATION_INFORMATION)
            return raw.decode("utf-16-le", "replace").split("\0", 1)[0]

    def _real() -> DevTree:
        return _CfgMgr32()


_slot: Slot[DevTree] = Slot(_real)
