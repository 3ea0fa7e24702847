"""INF ``Include=``/``Needs=``: a driver INF that takes sections from another (Windows') INF, resolved from
the ``--drivers`` folder, and the one-line errors when it cannot be; decorations with a build number.

Every INF here is written for these tests (tests/adapt/drivers.py), none is a vendor's or Windows' own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.disk.controller import Controller
from core.drivers.inf import Inf, Target, find_device
from core.errors import FormatError, UnsupportedError
from core.repair.adapt_disk import choose_driver
from tests.adapt.drivers import (AHCI_FILTER_DEV, AHCI_FILTER_INF, AHCI_FILTER_VEN, EXSTOR_INF, WINDOWS_HDC_INF,
                                 driver_folder, filter_folder)

WIN7_X64, WIN7_X86 = Target("amd64", (6, 1)), Target("x86", (6, 1))
AHCI = Controller("ahci", "detected", "0000:00:1f.2", 0x010601, AHCI_FILTER_VEN, AHCI_FILTER_DEV, 0x11001AF4)


def test_needed_sections_of_an_included_inf_join_the_install(tmp_path: Path) -> None:
    folder = filter_folder(tmp_path / "drv")
    for target in (WIN7_X64, WIN7_X86):
        c = choose_driver(str(folder), AHCI, target)
        assert c.inf == folder / "exahci.inf" and c.hardware_id == "PCI\\VEN_8086&DEV_2922"
        assert c.included == [folder / "windows" / "exhdc.inf"]
        # the .Services section's own AddService, then those of the sections its Needs name
        assert [(s.name, s.flags, s.start_type, s.error_control, s.binary, s.group) for s in c.services] == [
            ("exahcf", 0, 0, 1, "\\SystemRoot\\System32\\drivers\\exahcf.sys", "PnP Filter"),
            ("stdahci", 2, 0, 3, "\\SystemRoot\\System32\\drivers\\stdahci.sys", "SCSI Miniport")]
        assert c.function_service is not None and c.function_service.name == "stdahci"
        # the filter's own file comes from the folder; the Windows INF's file is Windows' own
        assert c.files == [("exahcf.sys", folder / "exahcf.sys")]
        assert c.system_files == [("stdahci.sys", "exhdc.inf")]


def test_a_file_beside_the_included_inf_is_copied_from_there(tmp_path: Path) -> None:
    folder = filter_folder(tmp_path / "drv")
    (folder / "windows" / "STDAHCI.SYS").write_bytes(b"MZ given with the driver")
    c = choose_driver(str(folder), AHCI, WIN7_X64)
    assert c.files == [("exahcf.sys", folder / "exahcf.sys"), ("stdahci.sys", folder / "windows" / "STDAHCI.SYS")]
    assert c.system_files == []


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def test_an_included_inf_not_in_the_folder_is_named_in_one_line(tmp_path: Path) -> None:
    folder = filter_folder(tmp_path / "drv", with_windows_inf=False)
    with pytest.raises(FormatError) as e:
        choose_driver(str(folder), AHCI, WIN7_X64)
    msg = e.value.message
    line = _line_of(AHCI_FILTER_INF, "Include   = %HDC_INF%")
    assert "\n" not in msg and f"exahci.inf line {line}:" in msg, msg
    assert f"Include=exhdc.inf: exhdc.inf is not in {folder}" in msg and "\\Windows\\INF\\exhdc.inf" in msg, msg
    # the default resolver (find_device alone) looks beside the INF and says the same
    with pytest.raises(FormatError, match=r"exhdc.inf is not in .*drv; it is needed"):
        find_device(Inf(folder / "exahci.inf"), WIN7_X64, AHCI.ids)


def test_two_copies_of_the_included_inf_are_refused(tmp_path: Path) -> None:
    folder = filter_folder(tmp_path / "drv")
    (folder / "EXHDC.INF").write_text(WINDOWS_HDC_INF)
    with pytest.raises(FormatError, match=r"holds 2 files named exhdc.inf .*: keep one"):
        choose_driver(str(folder), AHCI, WIN7_X64)


NEW = -1  # the error names the line of the replacement
# (what, file changed, replace this, with that, expected text, line: NEW or None)
BAD = [
    ("needed section missing", "exahci.inf", "Needs     = stdahci_Inst\n", "Needs     = nosuch_Inst\n",
     "Needs=nosuch_Inst: section [nosuch_Inst] is in neither exahci.inf nor the included exhdc.inf", NEW),
    ("needs without include", "exahci.inf", "Include   = %HDC_INF%\nNeeds     = stdahci_Inst\n",
     "Needs     = stdahci_Inst\n", "nor the included no INF (no Include= names one)", NEW),
    ("needed section in both INFs", "exahci.inf", "[ExAhci_Files]", "[stdahci_Inst]\n[ExAhci_Files]",
     "section [stdahci_Inst] is in both exahci.inf and exhdc.inf", None),
    ("nested needs", "exhdc.inf", "CopyFiles = @stdahci.sys\n", "Needs = other_Inst\nCopyFiles = @stdahci.sys\n",
     "has a Needs= itself: Needs do not nest", NEW),
    ("include not a plain name", "exahci.inf", 'HDC_INF  = "exhdc.inf"', 'HDC_INF  = "..\\exhdc.inf"',
     "is not the plain name of an .inf file", None),
    ("include not an inf", "exahci.inf", 'HDC_INF  = "exhdc.inf"', 'HDC_INF  = "exhdc.sys"',
     "is not the plain name of an .inf file", None),
    ("service added twice", "exahci.inf", "AddService = exahcf, , exahcf_Service_Inst",
     "AddService = stdahci, , exahcf_Service_Inst", "service stdahci is added twice", None),
    ("included inf without signature", "exhdc.inf", 'Signature  = "$Windows NT$"\n', "",
     "no [Version] Signature", None),
    ("string missing in the included inf", "exhdc.inf", "ErrorControl   = 3", "ErrorControl   = %EC%",
     "%EC% is not in [Strings]", NEW),
]


@pytest.mark.parametrize("what,name,old,new,text,line", BAD, ids=[b[0] for b in BAD])
def test_malformed_include_or_needs_is_one_clean_error(tmp_path: Path, what: str, name: str, old: str, new: str,
                                                       text: str, line: int | None) -> None:
    folder = filter_folder(tmp_path / "drv")
    source = AHCI_FILTER_INF if name == "exahci.inf" else WINDOWS_HDC_INF
    assert old in source, what
    changed = source.replace(old, new, 1)
    path = folder / name if name == "exahci.inf" else folder / "windows" / name
    path.write_text(changed)
    with pytest.raises(FormatError) as e:
        choose_driver(str(folder), AHCI, WIN7_X64)
    msg = e.value.message
    # the error names the file it is in: the changed one, or for a service added twice the Windows INF
    named = folder / "windows" / "exhdc.inf" if what == "service added twice" else path
    assert "\n" not in msg and f"{named} line " in msg and text in msg, msg
    if line == NEW:
        assert f"line {_line_of(changed, new)}:" in msg, msg


def test_a_decoration_with_a_build_number_applies_only_to_a_known_build_not_older(tmp_path: Path) -> None:
    folder = driver_folder(tmp_path / "drv")
    (folder / "exstor.inf").write_text(EXSTOR_INF.replace("NTamd64.10.0\n", "NTamd64.10.0...16299\n", 1)
                                       .replace("[ExampleModels.NTamd64.10.0]", "[ExampleModels.NTamd64.10.0...16299]"))
    inf = Inf(folder / "exstor.inf")
    ids = ["PCI\\VEN_1234&DEV_5678"]

    def models(target: Target) -> str:
        c = find_device(inf, target, ids)
        assert c is not None
        return c.models_section
    assert models(Target("amd64", (10, 0))) == "ExampleModels.NTamd64"  # build unknown (the SYSTEM hive's case)
    assert models(Target("amd64", (10, 0), 15063)) == "ExampleModels.NTamd64"
    assert models(Target("amd64", (10, 0), 16299)) == "ExampleModels.NTamd64.10.0...16299"
    (folder / "exstor.inf").write_text(EXSTOR_INF.replace("NTamd64.10.0\n", "NTamd64.10.0...1.2.3\n", 1))
    with pytest.raises(FormatError, match="has more than NTarch.major.minor.type.suite.build"):
        find_device(Inf(folder / "exstor.inf"), Target("amd64", (10, 0)), ids)


def test_a_windows_inf_in_the_folder_is_only_an_include(tmp_path: Path) -> None:
    """Its models match any AHCI controller (PCI\\CC_010601), but its files are Windows' own: it is never
    chosen as the driver, only read when a driver includes it."""
    folder = filter_folder(tmp_path / "drv")
    assert Inf(folder / "windows" / "exhdc.inf").is_windows_inf and not Inf(folder / "exahci.inf").is_windows_inf
    assert find_device(Inf(folder / "windows" / "exhdc.inf"), WIN7_X64, ["PCI\\CC_010601"]) is not None
    with pytest.raises(UnsupportedError, match=r"no driver in .* matches PCI\\CC_010601 for Windows 7 amd64"):
        choose_driver(str(folder), Controller("ahci", "given"), WIN7_X64)
