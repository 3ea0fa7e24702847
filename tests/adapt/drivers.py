"""Test drivers written for these tests: an INF in the shape of a real storage-driver INF (several
models sections and decorations, strings, two services, a 32/64-bit split) and minimal PE files with
a version resource. No vendor file is copied."""

from __future__ import annotations

import struct
from pathlib import Path

from core.drivers.c_pe import (COFF_HEADER, DATA_DIRECTORY, DOS_HEADER, FIXED_FILE_INFO, FIXED_SIGNATURE, PE32_PLUS,
                               RESOURCE_DATA, RESOURCE_DIRECTORY, RESOURCE_ENTRY, RT_VERSION, SECTION, SUBDIRECTORY,
                               VERSION_HEADER, VERSION_KEY)

NVME_VEN, NVME_DEV, NVME_SUBSYS = 0x1234, 0x5678, 0x00011234

EXSTOR_INF = r"""; ExampleStor NVMe driver: written for rescue's tests in the shape of a vendor's storage INF
[Version]
Signature   = "$WINDOWS NT$"
Class       = SCSIAdapter
ClassGUID   = {4D36E97B-E325-11CE-BFC1-08002BE10318}
Provider    = %PROVIDER%
CatalogFile.NTx86   = exstor32.cat
CatalogFile.NTamd64 = exstor64.cat
DriverVer   = 03/14/2015,1.2.3.4

[SourceDisksNames]
1 = %DISK%,,,

[SourceDisksFiles.x86]
exstor.sys = 1,x86
exfilt.sys = 1,x86

[SourceDisksFiles.amd64]
exstor.sys = 1,x64
exfilt.sys = 1,x64

[DestinationDirs]
DefaultDestDir = 12
Exstor_Tools   = 11 ; coinstaller: System32, not needed at boot

[Manufacturer]
%VENDOR% = ExampleModels, NTx86, NTamd64, NTamd64.10.0
%OEM%    = OemModels, NTx86.6.1, NTamd64.6.1

[ExampleModels.NTx86]
%NVME_DESC%    = exstor_Inst, PCI\VEN_1234&DEV_5678
%GENERIC_DESC% = exstor_Inst, PCI\CC_010802

[ExampleModels.NTamd64]
%NVME_DESC%    = exstor_Inst, PCI\VEN_1234&DEV_5678
%GENERIC_DESC% = exstor_Inst, PCI\CC_010802

[ExampleModels.NTamd64.10.0]
%NVME_DESC% = exstor_Inst10, PCI\VEN_1234&DEV_5678

[OemModels.NTx86.6.1]
%OEM_DESC% = exstor_Inst, PCI\VEN_1234&DEV_5678&SUBSYS_00011234

[OemModels.NTamd64.6.1]
%OEM_DESC% = exstor_Inst, \
             PCI\VEN_1234&DEV_5678&SUBSYS_00011234

[exstor_Inst]
CopyFiles = Exstor_Files, Exstor_Tools

[exstor_Inst.Services]
AddService = exstor, 0x00000002, exstor_Service_Inst
AddService = exfilt, , exfilt_Service_Inst

[exstor_Inst10.NT]
CopyFiles = Exstor_Files

[exstor_Inst10.NT.Services]
AddService = exstor, %SPSVCINST_ASSOCSERVICE%, exstor_Service_Inst

[Exstor_Files]
exstor.sys,,,0x00004000
exfilt.sys

[Exstor_Tools]
exsetup.dll

[exstor_Service_Inst]
DisplayName    = %NVME_DESC%
ServiceType    = %SERVICE_KERNEL_DRIVER%
StartType      = 0 ; SERVICE_BOOT_START
ErrorControl   = 1
ServiceBinary  = %12%\exstor.sys
LoadOrderGroup = SCSI Miniport

[exfilt_Service_Inst]
ServiceType    = 1
StartType      = 3
ErrorControl   = 1
ServiceBinary  = %12%\exfilt.sys
LoadOrderGroup = "PnP Filter"

[Strings]
PROVIDER      = "Example Storage"
VENDOR        = "Example Storage Inc."
OEM           = "Example OEM"
DISK          = "ExampleStor driver disk"
NVME_DESC     = "Example NVMe Controller"
GENERIC_DESC  = "Standard NVM Express Controller (""Example"")"
OEM_DESC      = "Example OEM NVMe 100%% fast"
SERVICE_KERNEL_DRIVER  = 1
SPSVCINST_ASSOCSERVICE = 0x00000002
"""


def pe_file(version: tuple[int, int, int, int] | None, payload: bytes = b"") -> bytes:
    """A minimal PE32+ image whose only section holds an RT_VERSION resource with ``version``."""
    opt_size = 240  # PE32+ optional header with 16 data directories
    rsrc_rva, rsrc_off = 0x1000, 0x200
    res = bytearray()
    if version is not None:
        ms, ls = version[0] << 16 | version[1], version[2] << 16 | version[3]
        fixed = FIXED_FILE_INFO.build(signature=FIXED_SIGNATURE, struct_version=0x10000, file_ms=ms, file_ls=ls,
                                      product_ms=ms, product_ls=ls, flags_mask=0x3F, flags=0, os=0x40004,
                                      type=3, subtype=7, date_ms=0, date_ls=0)
        body = VERSION_KEY + b"\x00" * ((-(VERSION_HEADER.size + len(VERSION_KEY))) % 4) + fixed
        info = VERSION_HEADER.build(length=VERSION_HEADER.size + len(body), value_length=FIXED_FILE_INFO.size,
                                    type=0) + body

        def directory(entry_id: int, target: int) -> bytes:
            return RESOURCE_DIRECTORY.build(characteristics=0, timestamp=0, major=0, minor=0, named=0, ids=1) + \
                RESOURCE_ENTRY.build(name=entry_id, offset=target)
        step = RESOURCE_DIRECTORY.size + RESOURCE_ENTRY.size
        res += directory(RT_VERSION, SUBDIRECTORY | step)
        res += directory(1, SUBDIRECTORY | 2 * step)
        res += directory(0x409, 3 * step)
        res += RESOURCE_DATA.build(rva=rsrc_rva + 3 * step + RESOURCE_DATA.size, size=len(info), codepage=0,
                                   reserved=0)
        res += info
    res += payload
    res += bytes(-len(res) % 0x200)
    dos = DOS_HEADER.build(magic=b"MZ", unused=bytes(58), e_lfanew=0x40)
    coff = COFF_HEADER.build(signature=b"PE\x00\x00", machine=0x8664, sections=1, timestamp=0, symbols=0,
                             symbol_count=0, optional_size=opt_size, characteristics=0x22)
    opt = bytearray(opt_size)
    struct.pack_into("<H", opt, 0, PE32_PLUS)
    if version is not None:
        opt[112 + 2 * DATA_DIRECTORY.size:112 + 3 * DATA_DIRECTORY.size] = DATA_DIRECTORY.build(rva=rsrc_rva,
                                                                                            size=len(res))
    section = SECTION.build(name=b".rsrc\x00\x00\x00", virtual_size=len(res), rva=rsrc_rva, raw_size=len(res),
                            raw_offset=rsrc_off, unused=bytes(16))
    head = dos + coff + bytes(opt) + section
    return head + bytes(rsrc_off - len(head)) + bytes(res)


def driver_folder(root: Path, *, version: tuple[int, int, int, int] = (1, 2, 3, 4)) -> Path:
    """A driver folder: the INF, 32- and 64-bit .sys files (different bytes), a catalog placeholder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "exstor.inf").write_text(EXSTOR_INF.replace("\n", "\r\n"), encoding="cp1252")
    for sub, tag in (("x86", b"32-bit"), ("x64", b"64-bit")):
        (root / sub).mkdir(exist_ok=True)
        (root / sub / "exstor.sys").write_bytes(pe_file(version, b"exstor " + tag))
        (root / sub / "exfilt.sys").write_bytes(pe_file(version, b"exfilt " + tag))
    (root / "exstor32.cat").write_bytes(b"catalog placeholder: not checked offline")
    return root


# A stand-in for a Windows INF that driver INFs include (Windows' own mshdc.inf has this shape: a
# LayoutFile instead of SourceDisksFiles, its files already on every Windows). Written for these tests:
# the section and service names are our own.
WINDOWS_HDC_INF = r"""; Stand-in for a Windows hdc INF, written for rescue's tests
[Version]
Signature  = "$Windows NT$"
Class      = hdc
ClassGuid  = {4D36E96A-E325-11CE-BFC1-08002BE10318}
Provider   = %MS%
LayoutFile = layout.inf

[DestinationDirs]
DefaultDestDir = 12

[Manufacturer]
%STD% = Std_Models, NTx86, NTamd64

[Std_Models.NTx86]
%AHCI_DESC% = stdahci_Inst, PCI\CC_010601

[Std_Models.NTamd64]
%AHCI_DESC% = stdahci_Inst, PCI\CC_010601

[stdahci_Inst]
CopyFiles = @stdahci.sys

[stdahci_Inst.Services]
AddService = stdahci, %SPSVCINST_ASSOCSERVICE%, stdahci_Service_Inst

[stdahci_Service_Inst]
ServiceType    = 1
StartType      = 0
ErrorControl   = 3
ServiceBinary  = %12%\stdahci.sys
LoadOrderGroup = SCSI Miniport

[Strings]
MS        = "Stand-in Windows"
STD       = "(Standard disk controllers)"
AHCI_DESC = "Standard SATA AHCI Controller"
SPSVCINST_ASSOCSERVICE = 0x00000002
"""

# A vendor's AHCI driver that is a filter over the Windows AHCI driver: its DDInstall and .Services
# sections take the Windows INF's sections with Include=/Needs= and add the filter's own file and service.
AHCI_FILTER_INF = r"""; ExampleAHCI filter driver: written for rescue's tests in the shape of a vendor INF
[Version]
Signature   = "$WINDOWS NT$"
Class       = hdc
ClassGUID   = {4D36E96A-E325-11CE-BFC1-08002BE10318}
Provider    = %PROVIDER%
CatalogFile = exahci.cat
DriverVer   = 06/01/2016,2.0.0.1

[SourceDisksNames]
1 = %DISK%,,,

[SourceDisksFiles]
exahcf.sys = 1

[DestinationDirs]
DefaultDestDir = 12

[Manufacturer]
%VENDOR% = ExAhci, NTx86, NTamd64

[ExAhci.NTx86]
%DESC% = ExAhci_Inst, PCI\VEN_8086&DEV_2922

[ExAhci.NTamd64]
%DESC% = ExAhci_Inst, PCI\VEN_8086&DEV_2922

[ExAhci_Inst]
Include   = %HDC_INF%
Needs     = stdahci_Inst
CopyFiles = ExAhci_Files

[ExAhci_Inst.Services]
Include    = %HDC_INF%
Needs      = stdahci_Inst.Services
AddService = exahcf, , exahcf_Service_Inst

[ExAhci_Files]
exahcf.sys

[exahcf_Service_Inst]
ServiceType    = 1
StartType      = 0
ErrorControl   = 1
ServiceBinary  = %12%\exahcf.sys
LoadOrderGroup = "PnP Filter"

[Strings]
PROVIDER = "Example Storage"
VENDOR   = "Example Storage Inc."
DESC     = "Example AHCI Controller (filtered)"
DISK     = "ExampleAHCI driver disk"
HDC_INF  = "exhdc.inf"
"""

AHCI_FILTER_VEN, AHCI_FILTER_DEV = 0x8086, 0x2922


def filter_folder(root: Path, *, with_windows_inf: bool = True) -> Path:
    """A driver folder with the filter's INF and .sys and, when asked, the Windows INF it includes (in a
    subfolder of its own, as a user would put a copy of it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "exahci.inf").write_text(AHCI_FILTER_INF.replace("\n", "\r\n"), encoding="cp1252")
    (root / "exahcf.sys").write_bytes(pe_file((2, 0, 0, 1), b"exahcf"))
    if with_windows_inf:
        (root / "windows").mkdir(exist_ok=True)
        (root / "windows" / "exhdc.inf").write_bytes(b"\xff\xfe" + WINDOWS_HDC_INF.replace("\n", "\r\n")
                                                     .encode("utf-16-le"))
    return root
