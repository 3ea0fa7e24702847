"""BCD element and object types: bit fields, bcdedit names, well-known object GUIDs.

Element type (BOOT.md §8.3): bits 28-31 class (1 library, 2 application, 3 device, 5 OEM), bits
24-27 format (1 device, 2 string, 3 object, 4 object list, 5 integer, 6 boolean, 7 integer list),
bits 0-23 subtype. Application-class (0x2...) names depend on the object's application type (0x23000003
is `default` in {bootmgr} but `resumeobject` in an OS loader), so `element_name` takes the object type.
Names are bcdedit's (Microsoft Learn BCD WMI reference); unknown types print as bcdedit does,
``custom:XXXXXXXX``.
"""

from __future__ import annotations

from enum import IntEnum


class ElementClass(IntEnum):
    LIBRARY = 1
    APPLICATION = 2
    DEVICE = 3
    OEM = 5


class ElementFormat(IntEnum):
    DEVICE = 1
    STRING = 2
    OBJECT = 3
    OBJECT_LIST = 4
    INTEGER = 5
    BOOLEAN = 6
    INTEGER_LIST = 7


def element_class(code: int) -> int:
    return (code >> 28) & 0xF


def element_format(code: int) -> int:
    return (code >> 24) & 0xF


# Object types (Description\Type), BOOT.md §8.2.
OBJECT_TYPES: dict[int, str] = {
    0x10100001: "firmware boot manager",
    0x10100002: "Windows boot manager",
    0x101FFFFF: "firmware application",
    0x10200003: "Windows boot loader",
    0x10200004: "resume from hibernate",
    0x10200005: "memory tester",
    0x10300006: "legacy OS loader (NTLDR)",
    0x10400008: "boot sector",
    0x20100000: "library settings",
    0x20200003: "OS loader settings",
    0x20200004: "resume loader settings",
    0x20200005: "memory tester settings",
    0x30000000: "device options",
}

# Application types (bits 0-19 of an application object's type).
APP_FWBOOTMGR, APP_BOOTMGR, APP_OSLOADER, APP_RESUME, APP_MEMDIAG, APP_NTLDR, APP_BOOTSECTOR = 1, 2, 3, 4, 5, 6, 8

WELL_KNOWN_OBJECTS: dict[str, str] = {
    "a5a30fa2-3d06-4e9f-b5f4-a01df9d1fcba": "{fwbootmgr}",
    "9dea862c-5cdd-4e70-acc1-f32b344d4795": "{bootmgr}",
    "b2721d73-1db4-4c62-bf78-c548a880142d": "{memdiag}",
    "466f5a88-0af2-4f76-9038-095b170dc21c": "{ntldr}",
    "7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e": "{globalsettings}",
    "4636856e-540f-4170-a130-a84776f4c654": "{dbgsettings}",
    "0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9": "{emssettings}",
    "5189b25c-5558-4bf2-bca4-289b11bd29e2": "{badmemory}",
    "6efb52bf-1766-41db-a6b3-0ee5eff72bd7": "{bootloadersettings}",
    "7ff607e0-4395-11db-b0de-0800200c9a66": "{hypervisorsettings}",
    "1afa9c49-16ab-4a5c-901b-212802da9460": "{resumeloadersettings}",
    "ae5534e0-a924-466c-b836-758539a3ee3a": "{ramdiskoptions}",
    "313e8eed-7098-4586-a9bf-309c61f8d449": "{kerneldbgsettings}",
    "fa926493-6f1c-4193-a414-58f0b2456d1e": "{current}",  # bcdedit alias; never stored as a key
}

LIBRARY_ELEMENTS: dict[int, str] = {
    0x11000001: "device", 0x12000002: "path", 0x12000004: "description", 0x12000005: "locale",
    0x14000006: "inherit", 0x15000007: "truncatememory", 0x14000008: "recoverysequence",
    0x16000009: "recoveryenabled", 0x1700000A: "badmemorylist", 0x1600000B: "badmemoryaccess",
    0x1500000C: "firstmegabytepolicy", 0x1500000D: "relocatephysical", 0x1500000E: "avoidlowmemory",
    0x1600000F: "traditionalkseg", 0x16000010: "bootdebug", 0x15000011: "debugtype",
    0x15000012: "debugaddress", 0x15000013: "debugport", 0x15000014: "baudrate", 0x15000015: "channel",
    0x12000016: "targetname", 0x16000017: "noumex", 0x15000018: "debugstart", 0x12000019: "busparams",
    0x1500001A: "hostip", 0x1500001B: "port", 0x1600001C: "dhcp", 0x1200001D: "key", 0x1600001E: "vm",
    0x16000020: "bootems", 0x15000022: "emsport", 0x15000023: "emsbaudrate", 0x12000030: "loadoptions",
    0x16000040: "advancedoptions", 0x16000041: "optionsedit", 0x15000042: "keyringaddress",
    0x11000043: "bootstatusdatalogdevice", 0x12000044: "bootstatusdatalogfile",
    0x16000045: "bootstatusdatalogappend", 0x16000046: "graphicsmodedisabled",
    0x15000047: "configaccesspolicy", 0x16000048: "nointegritychecks", 0x16000049: "testsigning",
    0x1200004A: "fontpath", 0x1500004B: "integrityservices", 0x1500004C: "volumebandid",
    0x16000050: "extendedinput", 0x15000051: "initialconsoleinput", 0x15000052: "graphicsresolution",
    0x16000053: "restartonfailure", 0x16000054: "highestmode", 0x16000060: "isolatedcontext",
    0x15000065: "displaymessage", 0x15000066: "displaymessageoverride", 0x16000068: "nobootuxtext",
    0x16000069: "nobootuxprogress", 0x1600006A: "nobootuxfade", 0x1600006B: "bootuxreservepooldebug",
    0x1600006C: "bootuxdisabled", 0x1500006D: "bootuxfadeframes", 0x1600006E: "bootuxdumpstats",
    0x1600006F: "bootuxshowstats", 0x16000071: "multibootsystem", 0x16000072: "nokeyboard",
    0x15000073: "aliaswindowskey", 0x16000074: "bootshutdowndisabled", 0x15000075: "performancefrequency",
    0x15000076: "securebootrawpolicy", 0x17000077: "allowedinmemorysettings", 0x15000079: "bootuxtransitiontime",
    0x1600007A: "mobilegraphics", 0x1600007B: "forcefipscrypto", 0x1500007D: "booterrorux",
    0x1600007E: "flightsigning", 0x1500007F: "measuredbootlogformat", 0x15000080: "displayrotation",
    0x15000081: "logcontrol", 0x16000082: "nofirmwaresync", 0x11000084: "windowssyspart",
    0x16000087: "numlock",
}

BOOTMGR_ELEMENTS: dict[int, str] = {
    0x24000001: "displayorder", 0x24000002: "bootsequence", 0x23000003: "default", 0x25000004: "timeout",
    0x26000005: "resume", 0x23000006: "resumeobject", 0x24000007: "startupsequence",
    0x24000010: "toolsdisplayorder", 0x26000020: "displaybootmenu", 0x26000021: "noerrordisplay",
    0x21000022: "bcddevice", 0x22000023: "bcdfilepath", 0x26000024: "hormenabled", 0x26000025: "hiberboot",
    0x22000026: "passwordoverride", 0x22000027: "pinpassphraseoverride", 0x26000028: "processcustomactionsfirst",
    0x27000030: "customactions", 0x26000031: "persistbootsequence", 0x26000032: "skipstartupsequence",
    0x22000040: "fverecoveryurl", 0x22000041: "fverecoverymessage",
}

OSLOADER_ELEMENTS: dict[int, str] = {
    0x21000001: "osdevice", 0x22000002: "systemroot", 0x23000003: "resumeobject", 0x26000004: "stampdisks",
    0x26000010: "detecthal", 0x22000011: "kernel", 0x22000012: "hal", 0x22000013: "dbgtransport",
    0x25000020: "nx", 0x25000021: "pae", 0x26000022: "winpe", 0x26000024: "nocrashautoreboot",
    0x26000025: "lastknowngood", 0x26000026: "oslnxmemory", 0x26000030: "nolowmem", 0x25000031: "removememory",
    0x25000032: "increaseuserva", 0x25000033: "perfmem", 0x26000040: "vga", 0x26000041: "quietboot",
    0x26000042: "novesa", 0x26000043: "novga", 0x25000050: "clustermodeaddressing",
    0x26000051: "usephysicaldestination", 0x25000052: "restrictapiccluster", 0x22000053: "evstore",
    0x26000054: "uselegacyapicmode", 0x26000060: "onecpu", 0x25000061: "numproc", 0x26000062: "maxproc",
    0x25000063: "configflags", 0x26000064: "maxgroup", 0x26000065: "groupaware", 0x25000066: "groupsize",
    0x26000070: "usefirmwarepcisettings", 0x25000071: "msi", 0x25000072: "pciexpress", 0x25000080: "safeboot",
    0x26000081: "safebootalternateshell", 0x26000090: "bootlog", 0x26000091: "sos", 0x260000A0: "debug",
    0x260000A1: "halbreakpoint", 0x260000A2: "useplatformclock", 0x260000A3: "forcelegacyplatform",
    0x260000A4: "useplatformtick", 0x260000A5: "disabledynamictick", 0x250000A6: "tscsyncpolicy",
    0x260000B0: "ems", 0x250000C0: "forcefailure", 0x250000C1: "driverloadfailurepolicy",
    0x250000C2: "bootmenupolicy", 0x260000C3: "onetimeadvancedoptions", 0x260000C4: "onetimeoptionsedit",
    0x250000E0: "bootstatuspolicy", 0x260000E1: "disableelamdrivers", 0x250000F0: "hypervisorlaunchtype",
    0x220000F1: "hypervisorpath", 0x260000F2: "hypervisordebug", 0x250000F3: "hypervisordebugtype",
    0x250000F4: "hypervisordebugport", 0x250000F5: "hypervisorbaudrate", 0x250000F6: "hypervisorchannel",
    0x250000F7: "bootux", 0x260000F8: "hypervisordisableslat", 0x220000F9: "hypervisorbusparams",
    0x250000FA: "hypervisornumproc", 0x250000FB: "hypervisorrootprocpernode", 0x260000FC: "hypervisoruselargevtlb",
    0x250000FD: "hypervisorhostip", 0x250000FE: "hypervisorhostport", 0x250000FF: "hypervisordebugpages",
    0x25000100: "tpmbootentropy", 0x22000110: "hypervisorusekey", 0x22000112: "hypervisorproductskutype",
    0x25000113: "hypervisorrootproc", 0x26000114: "hypervisordhcp", 0x25000115: "hypervisoriommupolicy",
    0x26000116: "hypervisorusevapic", 0x22000117: "hypervisorloadoptions", 0x25000118: "hypervisormsrfilterpolicy",
    0x25000119: "hypervisormmionxpolicy", 0x2500011A: "hypervisorschedulertype", 0x25000120: "xsavepolicy",
    0x25000130: "claimedtpmcounter",
}

RESUME_ELEMENTS: dict[int, str] = {
    0x21000001: "filedevice", 0x22000002: "filepath", 0x26000003: "customsettings", 0x26000004: "pae",
    0x21000005: "associatedosdevice", 0x26000006: "debugoptionenabled", 0x25000007: "bootux",
    0x25000008: "bootmenupolicy", 0x26000024: "hormenabled",
}

MEMDIAG_ELEMENTS: dict[int, str] = {
    0x25000001: "passcount", 0x25000002: "testmix", 0x25000003: "failurecount", 0x25000004: "testtofail",
    0x26000005: "cacheenable",
}

NTLDR_ELEMENTS: dict[int, str] = {0x22000001: "bpbstring"}

DEVICE_ELEMENTS: dict[int, str] = {
    0x35000001: "ramdiskimageoffset", 0x35000002: "ramdisktftpclientport", 0x31000003: "ramdisksdidevice",
    0x32000004: "ramdisksdipath", 0x35000005: "ramdiskimagelength", 0x36000006: "exportascd",
    0x35000007: "ramdisktftpblocksize", 0x35000008: "ramdisktftpwindowsize", 0x36000009: "ramdiskmcenabled",
    0x3600000A: "ramdiskmctftpfallback", 0x3600000B: "ramdisktftpvarwindow",
}

_APP_TABLES: dict[int, dict[int, str]] = {
    APP_FWBOOTMGR: BOOTMGR_ELEMENTS, APP_BOOTMGR: BOOTMGR_ELEMENTS, APP_OSLOADER: OSLOADER_ELEMENTS,
    APP_RESUME: RESUME_ELEMENTS, APP_MEMDIAG: MEMDIAG_ELEMENTS, APP_NTLDR: NTLDR_ELEMENTS,
}


def object_type_name(object_type: int) -> str:
    return OBJECT_TYPES.get(object_type, f"type {object_type:#010x}")


def _app_tables(object_type: int | None) -> list[dict[int, str]]:
    if object_type is None:
        return [BOOTMGR_ELEMENTS, OSLOADER_ELEMENTS]
    category = object_type >> 28
    app = object_type & 0xFFFFF
    if category == 1 and app in _APP_TABLES:
        return [_APP_TABLES[app]]
    if category == 2:
        # Inheritable objects: bits 20-23 say which application type may inherit them.
        target = (object_type >> 20) & 0xF
        if target == 2:
            return [_APP_TABLES.get(app, OSLOADER_ELEMENTS)]
    return []


def element_name(code: int, object_type: int | None = None) -> str:
    """bcdedit's name for element ``code`` inside an object of ``object_type`` (custom:XXXXXXXX if unknown)."""
    cls = element_class(code)
    if cls == ElementClass.LIBRARY and code in LIBRARY_ELEMENTS:
        return LIBRARY_ELEMENTS[code]
    if cls == ElementClass.DEVICE and code in DEVICE_ELEMENTS:
        return DEVICE_ELEMENTS[code]
    if cls == ElementClass.APPLICATION:
        for table in _app_tables(object_type):
            if code in table:
                return table[code]
    return f"custom:{code:08x}"
