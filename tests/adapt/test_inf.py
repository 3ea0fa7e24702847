"""The INF reader and driver choice on INF files written for these tests, and the PE version reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.drivers.inf import MAX_INF, Inf, Target, find_device
from core.drivers.pever import file_version
from core.errors import FormatError
from core.repair.adapt_table import pci_ids
from tests.adapt.drivers import EXSTOR_INF, NVME_DEV, NVME_SUBSYS, NVME_VEN, driver_folder, pe_file

WIN7_X86, WIN7_X64, WIN10_X64 = Target("x86", (6, 1)), Target("amd64", (6, 1)), Target("amd64", (10, 0))
NVME_IDS = pci_ids(NVME_VEN, NVME_DEV, NVME_SUBSYS, 0x010802)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return driver_folder(tmp_path / "drv")


def test_most_specific_id_and_architecture_pick_the_oem_model_and_its_files(folder: Path) -> None:
    inf = Inf(folder / "exstor.inf")
    assert inf.version_field("CatalogFile", "x86") == "exstor32.cat"
    assert inf.version_field("ClassGUID") == "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
    for target, sub in ((WIN7_X86, "x86"), (WIN7_X64, "x64")):
        c = find_device(inf, target, NVME_IDS)
        assert c is not None
        assert c.hardware_id == "PCI\\VEN_1234&DEV_5678&SUBSYS_00011234"
        assert c.description == "Example OEM NVMe 100% fast"
        assert c.models_section.lower() == f"oemmodels.nt{target.arch}.6.1"
        assert c.install_section == "exstor_Inst"
        assert [(s.name, s.flags, s.service_type, s.start_type, s.error_control, s.binary, s.group)
                for s in c.services] == [
            ("exstor", 2, 1, 0, 1, "\\SystemRoot\\System32\\drivers\\exstor.sys", "SCSI Miniport"),
            ("exfilt", 0, 1, 3, 1, "\\SystemRoot\\System32\\drivers\\exfilt.sys", "PnP Filter")]
        assert c.function_service is c.services[0]
        assert [(n, p.relative_to(folder).as_posix()) for n, p in c.files] == [
            ("exstor.sys", f"{sub}/exstor.sys"), ("exfilt.sys", f"{sub}/exfilt.sys")]
        assert c.skipped_files == ["exsetup.dll"]


def test_decorations_follow_the_windows_version(folder: Path) -> None:
    inf = Inf(folder / "exstor.inf")
    ids = pci_ids(NVME_VEN, NVME_DEV, None, 0x010802)
    c7 = find_device(inf, WIN7_X64, ids)
    c10 = find_device(inf, WIN10_X64, ids)
    assert c7 is not None and c10 is not None
    assert (c7.models_section, c7.install_section) == ("ExampleModels.NTamd64", "exstor_Inst")
    assert (c10.models_section, c10.install_section) == ("ExampleModels.NTamd64.10.0", "exstor_Inst10.NT")
    assert [s.name for s in c10.services] == ["exstor"]
    # by class code alone (a controller named with --controller): the generic model
    generic = find_device(inf, WIN7_X86, pci_ids(None, None, None, 0x010802))
    assert generic is not None and generic.description == 'Standard NVM Express Controller ("Example")'
    assert find_device(inf, WIN7_X86, pci_ids(0x8086, 0x2922, None, 0x010601)) is None
    assert find_device(inf, Target("arm64", (10, 0)), NVME_IDS) is None  # no ARM64 models section


NEW = -1  # the error names the line of the replacement
BAD = [  # (what, replace this, with that, expected text, line: a number, NEW or None)
    ("no signature", 'Signature   = "$WINDOWS NT$"', "", "no [Version] Signature", None),
    ("wrong signature", '"$WINDOWS NT$"', '"$Windows 95$"', "is neither", NEW),
    ("unterminated quote", 'PROVIDER      = "Example Storage"', 'PROVIDER      = "Example Storage', "unterminated", NEW),
    ("unknown string", "%VENDOR% = ExampleModels", "%NOSUCH% = ExampleModels", "%NOSUCH% is not in [Strings]", NEW),
    ("missing service section", "exfilt, , exfilt_Service_Inst", "exfilt, , nowhere_Inst", "[nowhere_Inst] is missing",
     NEW),
    ("bad header", "[DestinationDirs]", "[DestinationDirs", "bad section header", NEW),
    ("bad number", "ErrorControl   = 1\nServiceBinary  = %12%\\exfilt.sys",
     "ErrorControl   = one\nServiceBinary  = %12%\\exfilt.sys", "is not a number", NEW),
    ("unknown dirid", "%12%\\exstor.sys", "%99%\\exstor.sys", "DIRID %99%", NEW),
    ("text before sections", "; ExampleStor NVMe driver", "ExampleStor NVMe driver", "before the first [section]", 1),
    ("bad decoration", "NTx86, NTamd64, NTamd64.10.0", "NTx86, NTsparc", "unknown architecture", NEW),
    ("missing install section", "= exstor_Inst, PCI\\VEN_1234&DEV_5678&SUBSYS", "= nosuch_Inst, PCI\\VEN_1234&DEV_5678&SUBSYS",
     "install section [nosuch_Inst] is missing", NEW),
    ("no function driver", "exstor, 0x00000002, exstor_Service_Inst\nAddService = exfilt",
     "exstor, 0, exstor_Service_Inst\nAddService = exfilt", "no AddService with flag 0x2", None),
    ("continuation at the end", "SPSVCINST_ASSOCSERVICE = 0x00000002\n", "SPSVCINST_ASSOCSERVICE = 0x00000002 \\\n",
     "continuation", NEW),
    ("service name reaching another key", "exfilt, , exfilt_Service_Inst", "Disk\\Enum, , exfilt_Service_Inst",
     "is not a plain service name", NEW),
    ("superscript dirid", "%12%\\exstor.sys", "%\u00b2%\\exstor.sys", "is not in [Strings]", NEW),
    ("odd percent", 'OEM_DESC      = "Example OEM NVMe 100%% fast"', 'OEM_DESC      = "Example OEM NVMe 100% fast"',
     "a lone %", NEW),
]


@pytest.mark.parametrize("what,old,new,text,line", BAD, ids=[b[0] for b in BAD])
def test_malformed_inf_is_one_clean_error_naming_file_and_line(folder: Path, what: str, old: str, new: str,
                                                               text: str, line: int | None) -> None:
    assert old in EXSTOR_INF, what
    path = folder / "exstor.inf"
    text_after = EXSTOR_INF.replace(old, new, 1)
    path.write_text(text_after)
    if line == NEW:
        line = text_after[:text_after.index(new)].count("\n") + 1
    with pytest.raises(FormatError) as e:
        for target in (WIN7_X86, WIN7_X64):
            find_device(Inf(path), target, NVME_IDS)
    msg = e.value.message
    assert "\n" not in msg and str(path) in msg and text in msg, msg
    if line is not None:
        assert f"line {line}:" in msg, msg


def test_missing_driver_file_and_oversized_or_binary_inf_are_refused(folder: Path) -> None:
    (folder / "x64" / "exfilt.sys").unlink()
    with pytest.raises(FormatError, match=r"exfilt.sys is not in .* \(needed by the driver\)"):
        find_device(Inf(folder / "exstor.inf"), WIN7_X64, NVME_IDS)
    big = folder / "big.inf"
    with big.open("wb") as f:
        f.truncate(MAX_INF + 1)
    with pytest.raises(FormatError, match="over"):
        Inf(big)
    binary = folder / "bin.inf"
    binary.write_bytes(b"[Version]\x00\x01")
    with pytest.raises(FormatError, match="NUL"):
        Inf(binary)


def test_utf16_inf_reads_like_ansi(folder: Path) -> None:
    path = folder / "exstor.inf"
    path.write_bytes(b"\xff\xfe" + EXSTOR_INF.encode("utf-16-le"))
    c = find_device(Inf(path), WIN7_X86, NVME_IDS)
    assert c is not None and c.description == "Example OEM NVMe 100% fast"


def test_pe_version_resource() -> None:
    assert file_version(pe_file((6, 1, 7601, 17514)), "a.sys") == (6, 1, 7601, 17514)
    assert file_version(pe_file(None), "b.sys") is None  # a PE without version resource
    assert file_version(b"not a PE file at all", "c.sys") is None
    damaged = bytearray(pe_file((1, 0, 0, 0)))
    at = bytes(damaged).index((0xFEEF04BD).to_bytes(4, "little"))
    damaged[at:at + 4] = b"XXXX"
    with pytest.raises(FormatError, match="VS_FIXEDFILEINFO"):
        file_version(bytes(damaged), "d.sys")
    cut = pe_file((1, 0, 0, 0))[:0x210]
    with pytest.raises(FormatError):
        file_version(cut, "e.sys")
