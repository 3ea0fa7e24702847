"""A fresh BCD store from ``\\Windows\\System32\\config\\BCD-Template``, as bcdboot makes one (BOOT.md §8.7).

Starting from a copy of the template: OS loader and resume objects the template may carry are
dropped (a real template has none); {bootmgr} gets the boot partition as device, the new loader as
default and display order; a new Windows Boot Loader (device = osdevice = the Windows partition, path
``\\Windows\\system32\\winload.exe`` or ``.efi``, systemroot ``\\Windows``, description "Windows 7")
and its resume object (``winresume``, ``\\hiberfil.sys``) are created; {memdiag}, when the template has
it, points at the boot partition. Boot files (bootmgr, \\Boot\\*) are not copied.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from ..bcd.device import STYLE_MBR, DeviceElement, PartitionDevice, PartitionId, encode_element
from ..bcd.store import BcdObject, BcdStore
from ..errors import FormatError
from ..regf.hive import Hive
from ..regf.values import RegType, encode_value

BOOTMGR = "9dea862c-5cdd-4e70-acc1-f32b344d4795"
MEMDIAG = "b2721d73-1db4-4c62-bf78-c548a880142d"
GLOBALSETTINGS = "7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e"
BOOTLOADERSETTINGS = "6efb52bf-1766-41db-a6b3-0ee5eff72bd7"
RESUMELOADERSETTINGS = "1afa9c49-16ab-4a5c-901b-212802da9460"
TYPE_BOOTMGR, TYPE_OSLOADER, TYPE_RESUME = 0x10100002, 0x10200003, 0x10200004
DESCRIPTION = "Windows 7"
NX_OPTIN = 0  # bcdboot's default "nx OptIn"


@dataclass(frozen=True)
class RebuildResult:
    data: bytes
    loader: str
    resume: str
    dropped: list[str]


def device_value(ident: PartitionId) -> bytes:
    """A plain partition device element for ``ident`` (88 bytes, as bcdedit writes it)."""
    blank = PartitionDevice(flags=0, reserved=0, partition_id=bytes(16), unknown=0, style=STYLE_MBR,
                            disk_id=bytes(16), tail=bytes(16))
    return encode_element(DeviceElement(bytes(16), blank.with_identity(ident)))


def _g(guid: str) -> str:
    return "{" + guid + "}"


def _object(store: BcdStore, guid: str, type_: int) -> BcdObject:
    existing = store.object(guid)
    if existing is not None:
        return existing
    w = store.writer
    key = w.ensure_key(f"Objects\\{_g(guid)}\\Description")
    w.set_value(key, "Type", RegType.DWORD, type_)
    w.ensure_key(f"Objects\\{_g(guid)}\\Elements")
    obj = store.object(guid)
    if obj is None:  # we just created it; not finding it means the writer is broken
        raise FormatError(what="BCD store", detail=f"object {guid} vanished after creation")
    return obj


def _set(store: BcdStore, obj: BcdObject, code: int, value: str | int | bool | list[str] | bytes) -> None:
    if isinstance(value, bytes):
        store.set_element(obj, code, RegType.BINARY, value)
    elif isinstance(value, bool):
        store.set_element(obj, code, RegType.BINARY, bytes([int(value)]))
    elif isinstance(value, int):
        store.set_element(obj, code, RegType.BINARY, struct.pack("<Q", value))
    elif isinstance(value, list):
        store.set_element(obj, code, RegType.MULTI_SZ, encode_value(RegType.MULTI_SZ, value))
    else:
        store.set_element(obj, code, RegType.SZ, encode_value(RegType.SZ, value))


def rebuild_store(template: bytes, *, boot: PartitionId, windows: PartitionId, uefi: bool,
                  locale: str = "en-US") -> RebuildResult:
    """The bytes of a new store built from ``template`` (raises `UnsupportedError` for a dirty template)."""
    store = BcdStore(Hive.from_bytes(template, name="BCD-Template"))
    w = store.writer
    dropped = []
    for obj in store.objects():
        if obj.type in (TYPE_OSLOADER, TYPE_RESUME):
            el = obj.element(0x12000004)
            dropped.append(f"{_g(obj.guid)} {obj.type_name}" + (f" {el.value!r}" if el is not None else ""))
            w.delete_key(obj.key)
    ext = "efi" if uefi else "exe"
    loader_guid, resume_guid = str(uuid.uuid4()), str(uuid.uuid4())

    resume = _object(store, resume_guid, TYPE_RESUME)
    _set(store, resume, 0x11000001, device_value(windows))
    _set(store, resume, 0x12000002, f"\\Windows\\system32\\winresume.{ext}")
    _set(store, resume, 0x12000004, "Windows Resume Application")
    _set(store, resume, 0x12000005, locale)
    _set(store, resume, 0x14000006, [_g(RESUMELOADERSETTINGS)])
    _set(store, resume, 0x21000001, device_value(windows))
    _set(store, resume, 0x22000002, "\\hiberfil.sys")

    loader = _object(store, loader_guid, TYPE_OSLOADER)
    _set(store, loader, 0x11000001, device_value(windows))
    _set(store, loader, 0x12000002, f"\\Windows\\system32\\winload.{ext}")
    _set(store, loader, 0x12000004, DESCRIPTION)
    _set(store, loader, 0x12000005, locale)
    _set(store, loader, 0x14000006, [_g(BOOTLOADERSETTINGS)])
    _set(store, loader, 0x21000001, device_value(windows))
    _set(store, loader, 0x22000002, "\\Windows")
    _set(store, loader, 0x23000003, _g(resume_guid))
    _set(store, loader, 0x25000020, NX_OPTIN)

    mgr = _object(store, BOOTMGR, TYPE_BOOTMGR)
    _set(store, mgr, 0x11000001, device_value(boot))
    if uefi:
        _set(store, mgr, 0x12000002, "\\EFI\\Microsoft\\Boot\\bootmgfw.efi")
    _set(store, mgr, 0x12000004, "Windows Boot Manager")
    _set(store, mgr, 0x12000005, locale)
    _set(store, mgr, 0x14000006, [_g(GLOBALSETTINGS)])
    _set(store, mgr, 0x23000003, _g(loader_guid))
    _set(store, mgr, 0x23000006, _g(resume_guid))
    _set(store, mgr, 0x24000001, [_g(loader_guid)])
    if mgr.element(0x25000004) is None:
        _set(store, mgr, 0x25000004, 30)
    memdiag = store.object(MEMDIAG)
    if memdiag is not None:
        _set(store, memdiag, 0x11000001, device_value(boot))
        _set(store, memdiag, 0x12000002, "\\EFI\\Microsoft\\Boot\\memtest.efi" if uefi else "\\boot\\memtest.exe")
        _set(store, mgr, 0x24000010, [_g(MEMDIAG)])
    return RebuildResult(w.commit(), loader_guid, resume_guid, dropped)

