"""Which DLLs a Windows program folder needs, read from its PE files, and which of them a WinPE image lacks.

WinPE cannot install anything at run time (no VC++ redistributable, no optional components without
DISM), so every DLL the frozen ``rescue.exe`` folder imports must be in the image's System32 or in the
folder itself; a missing one shows only at boot, as a loader error on a machine that cannot be fixed.
The build checks this up front from the PE import tables (normal and delay-load), without running
anything.

API-set names (``api-ms-win-*``, ``ext-ms-*``) are not files: Windows 10's loader resolves them through
its API-set schema, so they are not looked up.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from builder.errors import BuildError

PE_SUFFIXES = (".exe", ".dll", ".pyd")
MACHINE_AMD64 = 0x8664
_IMPORT_DIR, _DELAY_DIR = 1, 13


def _is_api_set(name: str) -> bool:
    return name.startswith(("api-ms-win-", "ext-ms-"))


class PeFile:
    """The headers of one PE image held in memory: its machine and the DLL names it imports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        d = self.data
        if d[:2] != b"MZ" or len(d) < 0x40:
            raise BuildError(detail=f"{path} is not a Windows executable (no MZ header)")
        pe = struct.unpack_from("<I", d, 0x3C)[0]
        if d[pe:pe + 4] != b"PE\0\0":
            raise BuildError(detail=f"{path} is not a Windows executable (no PE header)")
        self.machine, nsect = struct.unpack_from("<HH", d, pe + 4)
        opt_size = struct.unpack_from("<H", d, pe + 20)[0]
        opt = pe + 24
        magic = struct.unpack_from("<H", d, opt)[0]
        dirs = opt + (112 if magic == 0x20B else 96)  # PE32+ has 8-byte image base and stack fields
        ndirs = struct.unpack_from("<I", d, dirs - 4)[0]
        self.dirs = [struct.unpack_from("<II", d, dirs + 8 * i) for i in range(min(ndirs, 16))]
        sect = opt + opt_size
        self.sections = [struct.unpack_from("<IIII", d, sect + 40 * i + 8) for i in range(nsect)]

    def _offset(self, rva: int) -> int:
        for vsize, vaddr, rawsize, rawptr in self.sections:
            if vaddr <= rva < vaddr + max(vsize, rawsize):
                return int(rva - vaddr + rawptr)
        raise BuildError(detail=f"{self.path}: import table points outside its sections (RVA {rva:#x})")

    def _name(self, rva: int) -> str:
        off = self._offset(rva)
        return self.data[off:self.data.index(b"\0", off)].decode("ascii", "replace")

    def imports(self) -> set[str]:
        """Lower-case DLL names of the import and delay-import tables."""
        names: set[str] = set()
        for index, size, name_at in ((_IMPORT_DIR, 20, 12), (_DELAY_DIR, 32, 4)):
            if index >= len(self.dirs) or self.dirs[index][0] == 0:
                continue
            off = self._offset(self.dirs[index][0])
            while off + size <= len(self.data) and any(self.data[off:off + size]):
                rva = struct.unpack_from("<I", self.data, off + name_at)[0]
                if rva:
                    names.add(self._name(rva).lower())
                off += size
        return names


def bundle_pe_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PE_SUFFIXES)


def missing_imports(folder: Path, system32: Iterable[str]) -> dict[str, list[str]]:
    """DLL name -> the bundle's files that import it, for each name found neither in ``system32`` (the
    image's System32 file names) nor anywhere in the bundle. Refuses a file that is not x64."""
    have = {n.lower() for n in system32}
    files = bundle_pe_files(folder)
    have |= {p.name.lower() for p in files}
    missing: dict[str, list[str]] = {}
    for f in files:
        pe = PeFile(f)
        if pe.machine != MACHINE_AMD64:
            raise BuildError(detail=f"{f.relative_to(folder)} is not x64 (machine {pe.machine:#x}): "
                                    "the WinPE image is x64")
        for name in sorted(pe.imports()):
            if name not in have and not _is_api_set(name):
                missing.setdefault(name, []).append(str(f.relative_to(folder)))
    return missing
