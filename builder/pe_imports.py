"""The DLLs a Windows PE file (exe, dll, pyd) loads, and the check that a bundle finds all of them.

The Windows build checks with this that every DLL the frozen bundle needs is either in the bundle or
in WinPE's System32 (declared in ``winpe-system32.txt``): a DLL missing there fails only when WinPE
starts the program, on a machine that cannot be fixed, far from the build. The headers are read with
the engine's PE structs (core/drivers/c_pe.py) and its RVA mapping (core/drivers/pever.py); only the
two import directories (normal and delay-load) are declared here.

API sets (``api-ms-win-*``, ``ext-ms-*``) are not files: Windows 10's loader maps them through its
schema. They are checked against the declared families of the same list, whatever System32 is given.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from core.drivers.c_pe import COFF_HEADER, DATA_DIRECTORIES_AT, DATA_DIRECTORY, DOS_HEADER, PE_SIGNATURE, SECTION
from core.drivers.pever import _rva_to_offset
from core.errors import FormatError
from core.structs import Struct

from builder.errors import BuildError

IMPORT_INDEX, DELAY_IMPORT_INDEX = 1, 13  # IMAGE_DIRECTORY_ENTRY_IMPORT / _DELAY_IMPORT
IMPORT_DESCRIPTOR = Struct("import descriptor", [
    ("lookup_rva", "I"), ("timestamp", "I"), ("forwarder_chain", "I"), ("name_rva", "I"), ("iat_rva", "I")])
DELAY_DESCRIPTOR = Struct("delay import descriptor", [
    ("attributes", "I"), ("name_rva", "I"), ("module_rva", "I"), ("iat_rva", "I"), ("int_rva", "I"),
    ("bound_iat_rva", "I"), ("unload_iat_rva", "I"), ("timestamp", "I")])
# A PE file importing more DLLs than this is damaged (python313.dll imports about 40).
MAX_DESCRIPTORS = 1024
MAX_NAME = 260
MACHINE_AMD64 = 0x8664
SYSTEM32_LIST = Path(__file__).with_name("winpe-system32.txt")
API_SET_PREFIXES = ("api-ms-", "ext-ms-")


def _c_string(data: bytes, sections: list[dict[str, int]], rva: int, what: str) -> str:
    at = _rva_to_offset(sections, rva, 1, what)
    end = data.find(b"\0", at, at + MAX_NAME)
    if end < 0:
        raise FormatError(what=what, detail=f"DLL name at RVA {rva:#x} is not terminated")
    return data[at:end].decode("ascii", errors="replace")


def imported_dlls(data: bytes, what: str) -> list[str]:
    """Names of the DLLs ``data`` imports, directly or delay-loaded, as written in the file; [] when it is
    not a PE file. A damaged import table is a `FormatError`."""
    if len(data) < DOS_HEADER.size or data[:2] != b"MZ":
        return []
    pe = DOS_HEADER.parse(data, 0, what)["e_lfanew"]
    coff = COFF_HEADER.parse(data, pe, what)
    if coff["signature"] != PE_SIGNATURE:
        return []
    opt = pe + COFF_HEADER.size
    magic = int.from_bytes(data[opt:opt + 2], "little")
    if magic not in DATA_DIRECTORIES_AT:
        raise FormatError(what=what, detail=f"unknown optional header magic {magic:#x}")
    table = opt + coff["optional_size"]
    sections = [SECTION.parse(data, table + i * SECTION.size, what) for i in range(coff["sections"])]
    names: list[str] = []
    for index, desc in ((IMPORT_INDEX, IMPORT_DESCRIPTOR), (DELAY_IMPORT_INDEX, DELAY_DESCRIPTOR)):
        if DATA_DIRECTORIES_AT[magic] + (index + 1) * DATA_DIRECTORY.size > coff["optional_size"]:
            continue  # the optional header has no slot for this directory
        d = DATA_DIRECTORY.parse(data, opt + DATA_DIRECTORIES_AT[magic] + index * DATA_DIRECTORY.size, what)
        if d["rva"] == 0:
            continue
        at = _rva_to_offset(sections, d["rva"], desc.size, what)
        for i in range(MAX_DESCRIPTORS):
            entry = desc.parse(data, at + i * desc.size, what)
            if entry["name_rva"] == 0:  # the all-zero descriptor ends the table
                break
            names.append(_c_string(data, sections, entry["name_rva"], what))
        else:
            raise FormatError(what=what, detail=f"more than {MAX_DESCRIPTORS} imported DLLs")
    return names


def bundle_imports(folder: Path) -> dict[str, list[str]]:
    """Every PE file under ``folder`` (by content, not name) -> the DLLs it imports; paths relative."""
    out: dict[str, list[str]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                if f.read(2) != b"MZ":
                    continue
            out[p.relative_to(folder).as_posix()] = imported_dlls(p.read_bytes(), str(p))
    return out


def declared_system32(path: Path = SYSTEM32_LIST) -> tuple[set[str], tuple[str, ...]]:
    """The declared WinPE System32 list: (DLL names, API-set patterns), lower case."""
    names: set[str] = set()
    patterns: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip().lower()
        if line:
            (patterns.append(line) if "*" in line else names.add(line))
    return names, tuple(patterns)


def missing_dlls(folder: Path, system32: Iterable[str]) -> dict[str, list[str]]:
    """DLL name -> the bundle files importing it, for every import found neither in the bundle nor in
    ``system32`` (file names) nor among the declared API sets. A PE file that is not x64 is a
    BuildError: WinPE x64 runs no 32-bit code (no WOW64)."""
    _, api_sets = declared_system32()
    have = {n.lower() for n in system32}
    imports = bundle_imports(folder)
    have |= {Path(f).name.lower() for f in imports}
    missing: dict[str, list[str]] = {}
    for f, dlls in imports.items():
        data = (folder / f).read_bytes()
        pe = DOS_HEADER.parse(data, 0, f)["e_lfanew"]
        machine = COFF_HEADER.parse(data, pe, f)["machine"]
        if machine != MACHINE_AMD64:
            raise BuildError(detail=f"{f} is not x64 (machine {machine:#x}): WinPE x64 cannot load it")
        for dll in dlls:
            name = dll.lower()
            if name in have:
                continue
            if name.startswith(API_SET_PREFIXES) and any(fnmatch.fnmatchcase(name, p) for p in api_sets):
                continue
            missing.setdefault(name, []).append(f)
    return missing


def check_bundle(folder: Path) -> int:
    """The number of distinct DLLs the bundle imports; BuildError naming the first missing one (and who
    imports it) when one is in neither the bundle nor the declared WinPE System32 list."""
    names, _ = declared_system32()
    missing = missing_dlls(folder, names)
    if missing:
        name = sorted(missing)[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BuildError(detail=f"{name}, imported by {missing[name][0]}, is neither in the bundle nor in "
                                f"WinPE 10's System32 ({SYSTEM32_LIST.name}){more}")
    return len({d.lower() for dlls in bundle_imports(folder).values() for d in dlls})


def system_dlls(folder: Path) -> list[str]:
    """The DLL names the bundle imports from the system (not found in the bundle), lower case, sorted."""
    imports = bundle_imports(folder)
    inside = {Path(f).name.lower() for f in imports}
    return sorted({d.lower() for dlls in imports.values() for d in dlls} - inside)
