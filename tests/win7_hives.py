"""Windows 7 sample hives for the test disks, written by our own regf/BCD writer (no real sample needed).

- `bcd_store`: the store Windows 7 setup writes. BIOS: {bootmgr} and {memdiag} on System Reserved, the
  Windows 7 loader and its resume object on C:. UEFI: the same on the ESP and C: with the .efi loaders
  and a {fwbootmgr}. Both with the usual settings objects; every partition device names the disk the store
  is written to (MBR: signature + byte offset; GPT: partition GUID + disk GUID).
- `bcd_template`: ``Windows\\System32\\config\\BCD-Template``, what `rescue bcd rebuild` starts from.
- `system_hive`: SYSTEM with Select, Setup, ControlSet001/002 (ComputerName, Session Manager, a few
  CriticalDeviceDatabase entries, the storage driver services) and MountedDevices (C:, the volume GUID
  names of both partitions, a CD-ROM as D:), shaped after a real Windows 7 SYSTEM hive. Clean by default;
  ``dirty=True`` leaves it as Windows does when it did not finish a write (sequence numbers N+1/N).
- `logged_dirty_system`: that dirty SYSTEM together with the ``SYSTEM.LOG1`` Windows 7 wrote before
  it crashed (old format: base block, ``DIRT`` vector, dirty pages; BOOT.md §9.4) and an empty
  ``SYSTEM.LOG2``: the unfinished write renamed the computer, and only the log holds that.

Everything is deterministic from the seed (GUIDs, fixed timestamps), so the factory's manifests are.
"""

from __future__ import annotations

import uuid

from core.bcd.device import GptPartitionId, MbrPartitionId, PartitionId
from core.bcd.elements import WELL_KNOWN_OBJECTS
from core.bcd.mounteddevices import GptVolume, MbrVolume, MountedVolume, OtherVolume, encode_mounted
from core.bcd.store import ElementValue, encode_element_value
from core.regf.hive import Hive
from core.regf.new import new_hive
from core.regf.values import DecodedValue, RegType
from core.regf.writer import HiveWriter
from core.repair.rebuild import device_value
from tests.factory_content import seeded_guid

STAMP = 129434976000000000  # 2011-02-22, Windows 7 SP1's release: every key and base block carries it
LOCALE = "en-US"
CDROM = ("\\??\\IDE#CdRomQEMU_QEMU_DVD-ROM_____________________1.0.____#5&1d0b7ad0&0&1.0.0#"
         "{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}")  # QEMU's IDE CD-ROM, as mountmgr names it

_ALIAS = {alias: "{" + guid + "}" for guid, alias in WELL_KNOWN_OBJECTS.items()}
BOOTMGR, FWBOOTMGR, MEMDIAG = _ALIAS["{bootmgr}"], _ALIAS["{fwbootmgr}"], _ALIAS["{memdiag}"]
GLOBAL, DBG, EMS, BADMEM = (_ALIAS[a] for a in ("{globalsettings}", "{dbgsettings}", "{emssettings}",
                                                  "{badmemory}"))
LOADERSET, RESUMESET, HVSET = (_ALIAS[a] for a in ("{bootloadersettings}", "{resumeloadersettings}",
                                                   "{hypervisorsettings}"))

ObjectTable = dict[str, tuple[int, dict[int, ElementValue]]]  # "{guid}" -> (object type, code -> value)

# The settings objects every Windows 7 store and template holds, with bcdedit's defaults.
SETTINGS: ObjectTable = {
    GLOBAL: (0x20100000, {0x14000006: [DBG, EMS, BADMEM]}),
    DBG: (0x20100000, {0x15000011: 0, 0x15000013: 1, 0x15000014: 115200}),  # serial, COM1, 115200 baud
    EMS: (0x20100000, {0x16000020: False}),
    BADMEM: (0x20100000, {}),
    LOADERSET: (0x20200003, {0x14000006: [GLOBAL, HVSET]}),
    HVSET: (0x20200003, {0x250000F3: 0, 0x250000F4: 1, 0x250000F5: 115200}),
    RESUMESET: (0x20200004, {0x14000006: [GLOBAL]}),
}


def _described(what: str) -> dict[int, ElementValue]:
    """The description and locale elements every application object carries."""
    return {0x12000004: what, 0x12000005: LOCALE}


def store_objects(boot: PartitionId | None, windows: PartitionId | None, *, seed: int) -> ObjectTable:
    """The objects of the store (``boot``/``windows`` None: the template, which names no partition)."""
    uefi = isinstance(boot, GptPartitionId)
    ext = "efi" if uefi else "exe"
    mgr: dict[int, ElementValue] = {**_described("Windows Boot Manager"), 0x14000006: [GLOBAL],
                                    0x24000010: [MEMDIAG], 0x25000004: 30}
    memdiag: dict[int, ElementValue] = {
        0x12000002: "\\EFI\\Microsoft\\Boot\\memtest.efi" if uefi else "\\boot\\memtest.exe",
        **_described("Windows Memory Diagnostic"), 0x14000006: [GLOBAL], 0x1600000B: True}
    objects: ObjectTable = {**SETTINGS, BOOTMGR: (0x10100002, mgr), MEMDIAG: (0x10200005, memdiag)}
    if boot is None or windows is None:
        return objects
    loader, resume = "{" + seeded_guid(seed, "bcd-loader") + "}", "{" + seeded_guid(seed, "bcd-resume") + "}"
    boot_dev, win_dev = device_value(boot), device_value(windows)
    mgr.update({0x11000001: boot_dev, 0x23000003: loader, 0x23000006: resume, 0x24000001: [loader]})
    if uefi:
        mgr[0x12000002] = "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
        objects[FWBOOTMGR] = (0x10100001, {0x24000001: [BOOTMGR], 0x25000004: 2})
    memdiag[0x11000001] = boot_dev
    objects[loader] = (0x10200003, {
        0x11000001: win_dev, 0x12000002: f"\\Windows\\system32\\winload.{ext}", **_described("Windows 7"),
        0x14000006: [LOADERSET], 0x21000001: win_dev, 0x22000002: "\\Windows", 0x23000003: resume,
        0x25000020: 0})  # nx OptIn
    objects[resume] = (0x10200004, {
        0x11000001: win_dev, 0x12000002: f"\\Windows\\system32\\winresume.{ext}",
        **_described("Windows Resume Application"), 0x14000006: [RESUMESET], 0x21000001: win_dev,
        0x22000002: "\\hiberfil.sys", 0x26000006: False})  # debugoptionenabled
    return objects


def _store_bytes(objects: ObjectTable, file_name: str) -> bytes:
    hive = new_hive("NewStoreRoot", minor=3, file_name=file_name, timestamp=STAMP)
    w = HiveWriter(hive, clock=lambda: STAMP)
    w.set_value(w.ensure_key("Description"), "KeyName", RegType.SZ, "BCD00000000")
    w.ensure_key("Objects")
    for guid, (otype, elements) in objects.items():
        w.set_value(w.ensure_key(f"Objects\\{guid}\\Description"), "Type", RegType.DWORD, otype)
        w.ensure_key(f"Objects\\{guid}\\Elements")
        for code, value in elements.items():
            w.set_value(w.ensure_key(f"Objects\\{guid}\\Elements\\{code:08x}"), "Element",
                        *encode_element_value(code, value))
    return w.commit()


def bcd_store(boot: PartitionId, windows: PartitionId, *, seed: int) -> bytes:
    """\\Boot\\BCD (MBR ids) or \\EFI\\Microsoft\\Boot\\BCD (GPT ids) as Windows 7 setup writes it."""
    where = "EFI\\Microsoft\\Boot\\BCD" if isinstance(boot, GptPartitionId) else "Boot\\BCD"
    return _store_bytes(store_objects(boot, windows, seed=seed), f"\\Device\\HarddiskVolume1\\{where}")


def bcd_template() -> bytes:
    return _store_bytes(store_objects(None, None, seed=0), "\\SystemRoot\\System32\\config\\BCD-Template")


# --- SYSTEM -------------------------------------------------------------------------------------------

# Storage drivers as a Windows 7 SP1 install has them (checked against a real one): (Start on IDE, Start on
# AHCI, Type, ErrorControl, Group, ImagePath; None = no such value). Start 0 = boot driver, 3 = on demand
# (no such controller); Type 1 = kernel driver, 2 = file system driver.
SERVICES: dict[str, tuple[int, int, int, int, str | None, str | None]] = {
    "atapi": (0, 0, 1, 3, "SCSI Miniport", "system32\\drivers\\atapi.sys"),
    "intelide": (0, 3, 1, 3, "System Bus Extender", "system32\\drivers\\intelide.sys"),
    "pciide": (3, 3, 1, 3, "System Bus Extender", "\\SystemRoot\\system32\\drivers\\pciide.sys"),
    "msahci": (3, 0, 1, 3, "SCSI Miniport", "\\SystemRoot\\system32\\drivers\\msahci.sys"),
    "iaStorV": (3, 3, 1, 1, "SCSI Miniport", "\\SystemRoot\\system32\\drivers\\iaStorV.sys"),
    "amdsata": (3, 3, 1, 1, "SCSI miniport", "\\SystemRoot\\system32\\drivers\\amdsata.sys"),
    "LSI_SAS": (3, 3, 1, 1, "SCSI Miniport", "\\SystemRoot\\system32\\drivers\\lsi_sas.sys"),
    "storvsc": (3, 3, 1, 1, "Base", "\\SystemRoot\\system32\\drivers\\storvsc.sys"),
    "disk": (0, 0, 1, 1, None, "system32\\DRIVERS\\disk.sys"),
    "partmgr": (0, 0, 1, 3, "Boot Bus Extender", "System32\\drivers\\partmgr.sys"),
    "volmgr": (0, 0, 1, 3, "System Bus Extender", "system32\\drivers\\volmgr.sys"),
    "volmgrx": (0, 0, 1, 3, "System Bus Extender", "System32\\drivers\\volmgrx.sys"),
    "mountmgr": (0, 0, 1, 3, "System Bus Extender", "System32\\drivers\\mountmgr.sys"),
    "fvevol": (0, 0, 1, 3, "PnP Filter", "System32\\DRIVERS\\fvevol.sys"),
    "Ntfs": (3, 3, 2, 1, "Boot File System", None),
}
# A few CriticalDeviceDatabase entries (PnP id -> the driver that must load at boot for it), present
# whatever the controller: PIIX3 IDE (QEMU's), any AHCI controller, AMD SATA, the IDE channels.
IDE_CLASS = "{4D36E96A-E325-11CE-BFC1-08002BE10318}"
CRITICAL_DEVICES = {"PCI#VEN_8086&DEV_7010": "intelide", "PCI#CC_010601": "msahci",
                    "PCI#VEN_1002&DEV_4394&CC_0106": "amdsata", "Internal_IDE_Channel": "atapi"}
SESSION_MANAGER: dict[str, tuple[int, DecodedValue]] = {
    "BootExecute": (RegType.MULTI_SZ, ["autocheck autochk *"]),
    "CriticalSectionTimeout": (RegType.DWORD, 2592000),
    "GlobalFlag": (RegType.DWORD, 0),
    "ObjectDirectories": (RegType.MULTI_SZ, ["\\Windows", "\\RPC Control"]),
    "ProtectionMode": (RegType.DWORD, 1),
    "SETUPEXECUTE": (RegType.MULTI_SZ, []),
}


def volume_of(ident: PartitionId) -> MountedVolume:
    if isinstance(ident, MbrPartitionId):
        return MbrVolume(ident.signature, ident.offset)
    return GptVolume(ident.part_guid)


def volume_guid(seed: int, what: str) -> str:
    """A volume GUID as mountmgr makes them (time-based, with its fixed node bytes)."""
    g = uuid.UUID(seeded_guid(seed, what))
    return str(uuid.UUID(fields=(g.time_low, g.time_mid, 0x11E0, 0x82, 0x4F, 0x806E6F6E6963)))


def mounted_devices(boot: PartitionId, windows: PartitionId, *, seed: int) -> dict[str, MountedVolume]:
    """The MountedDevices values of this install: C:, the volume names of both partitions and a CD-ROM."""
    cdrom = OtherVolume(CDROM.encode("utf-16-le"))
    return {
        "\\DosDevices\\C:": volume_of(windows),
        f"\\??\\Volume{{{volume_guid(seed, 'vol-boot')}}}": volume_of(boot),
        f"\\??\\Volume{{{volume_guid(seed, 'vol-windows')}}}": volume_of(windows),
        f"\\??\\Volume{{{volume_guid(seed, 'vol-cdrom')}}}": cdrom,
        "\\DosDevices\\D:": cdrom,
    }


def system_hive(boot: PartitionId, windows: PartitionId, *, seed: int, computer: str = "WIN7-PC",
                controller: str = "ide", dirty: bool = False) -> bytes:
    """Windows\\System32\\config\\SYSTEM of this install (``controller``: "ide" or "ahci")."""
    hive = new_hive("CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}", minor=5,
                    file_name="\\SystemRoot\\System32\\Config\\SYSTEM", timestamp=STAMP)
    w = HiveWriter(hive, clock=lambda: STAMP)
    for name, value in (("Current", 1), ("Default", 1), ("Failed", 0), ("LastKnownGood", 2)):
        w.set_value(w.ensure_key("Select"), name, RegType.DWORD, value)
    setup = w.ensure_key("Setup")
    w.set_value(setup, "SystemPartition", RegType.SZ, "\\Device\\HarddiskVolume1")
    w.set_value(setup, "OsLoaderPath", RegType.SZ, "\\")
    w.set_value(setup, "SystemSetupInProgress", RegType.DWORD, 0)
    for cs in ("ControlSet001", "ControlSet002"):
        name_key = w.ensure_key(f"{cs}\\Control\\ComputerName\\ComputerName")
        w.set_value(name_key, "", RegType.SZ, "mnmsrvc")
        w.set_value(name_key, "ComputerName", RegType.SZ, computer)
        sm = w.ensure_key(f"{cs}\\Control\\Session Manager")
        for vname, (vtype, sm_value) in SESSION_MANAGER.items():
            w.set_value(sm, vname, vtype, sm_value)
        w.set_value(w.ensure_key(f"{cs}\\Control\\Session Manager\\Memory Management"), "PagingFiles",
                    RegType.MULTI_SZ, ["?:\\pagefile.sys"])
        for dev, service in CRITICAL_DEVICES.items():
            k = w.ensure_key(f"{cs}\\Control\\CriticalDeviceDatabase\\{dev}")
            w.set_value(k, "ClassGUID", RegType.SZ, IDE_CLASS)
            w.set_value(k, "Service", RegType.SZ, service)
        for svc, (ide, ahci, stype, error, group, image) in SERVICES.items():
            k = w.ensure_key(f"{cs}\\Services\\{svc}")
            w.set_value(k, "Start", RegType.DWORD, ide if controller == "ide" else ahci)
            w.set_value(k, "Type", RegType.DWORD, stype)
            w.set_value(k, "ErrorControl", RegType.DWORD, error)
            if group is not None:
                w.set_value(k, "Group", RegType.SZ, group)
            if image is not None:
                w.set_value(k, "ImagePath", RegType.EXPAND_SZ, image)
    md = w.ensure_key("MountedDevices")
    for vname, vol in mounted_devices(boot, windows, seed=seed).items():
        w.set_value(md, vname, RegType.BINARY, encode_mounted(vol))
    data = w.commit()
    if not dirty:
        return data
    dirty_hive = Hive.from_bytes(data, name="SYSTEM")
    dirty_hive.set_header_fields(seq1=dirty_hive.header.seq2 + 1)  # a write started and never finished
    return bytes(dirty_hive.data)


LOGGED_COMPUTER = "AFTER-CRASH"  # the ComputerName the unfinished write set, only in the log


def logged_dirty_system(boot: PartitionId, windows: PartitionId, *, seed: int) -> dict[str, bytes]:
    """SYSTEM, SYSTEM.LOG1 and SYSTEM.LOG2 as Windows 7 leaves them after a crash in the middle of a write.

    Windows 7 first writes the log (a copy of the new base block with file type 1 and sequence numbers
    N+1/N+1, the dirty vector, the dirty 4 KiB blocks as 512-byte pages), then the primary's base block
    (sequence numbers N+1/N, the new timestamp), then the data: the crash came before the data.
    """
    clean = system_hive(boot, windows, seed=seed)
    hive = Hive.from_bytes(clean, name="SYSTEM")
    w = HiveWriter(hive, clock=lambda: STAMP + 10_000_000)  # the write happened a second later
    for cs in ("ControlSet001", "ControlSet002"):
        w.set_value(w.ensure_key(f"{cs}\\Control\\ComputerName\\ComputerName"), "ComputerName", RegType.SZ,
                    LOGGED_COMPUTER)
    after = w.commit()
    hbins = hive.header.hbins_size
    old_bins = clean[4096:].ljust(hbins, b"\0")
    blocks = [i for i in range(hbins // 4096)
              if after[4096 + i * 4096:8192 + i * 4096] != old_bins[i * 4096:(i + 1) * 4096]]
    log_base = Hive.from_bytes(after, name="log")
    log_base.set_header_fields(file_type=1)
    bitmap = bytearray(hbins // 4096)
    for i in blocks:
        bitmap[i] = 0xFF  # eight 512-byte pages per 4 KiB block, as Windows tracks them
    vector = b"DIRT" + bytes(bitmap)
    vector += bytes(-len(vector) % 512)
    pages = b"".join(after[4096 + i * 4096:8192 + i * 4096] for i in blocks)
    log = bytes(log_base.data[:512]) + vector + pages
    primary = Hive.from_bytes(after, name="SYSTEM")
    primary.set_header_fields(seq2=primary.header.seq1 - 1)
    return {"SYSTEM": bytes(primary.data[:4096]) + clean[4096:], "SYSTEM.LOG1": log, "SYSTEM.LOG2": b""}
