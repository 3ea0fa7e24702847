"""The file version of a Windows driver (.sys): VS_FIXEDFILEINFO in its RT_VERSION resource.

Used to never replace a driver file with an older one. Every offset is checked against the file
before use; what is not a PE file with a version resource gives None (the caller then refuses to
overwrite), and only a damaged structure inside a PE is a `FormatError`.
"""

from __future__ import annotations

from ..errors import FormatError
from .c_pe import (COFF_HEADER, DATA_DIRECTORIES_AT, DATA_DIRECTORY, DOS_HEADER, FIXED_FILE_INFO,
                   FIXED_SIGNATURE, PE_SIGNATURE, RESOURCE_DATA, RESOURCE_DIRECTORY, RESOURCE_DIRECTORY_INDEX,
                   RESOURCE_ENTRY, RT_VERSION, SECTION, SUBDIRECTORY, VERSION_HEADER, VERSION_KEY)

Version = tuple[int, int, int, int]
# A resource directory with more entries than this is damaged (a driver has a handful of resources).
MAX_RESOURCE_ENTRIES = 4096


def _rva_to_offset(sections: list[dict[str, int]], rva: int, size: int, what: str) -> int:
    for s in sections:
        span = max(s["virtual_size"], s["raw_size"])
        if s["rva"] <= rva and rva + size <= s["rva"] + span:
            off = s["raw_offset"] + rva - s["rva"]
            if rva + size > s["rva"] + s["raw_size"]:
                break
            return int(off)
    raise FormatError(what=what, detail=f"RVA {rva:#x} (+{size}) lies in no section's file data")


def _first_entry(data: bytes, base: int, at: int, what: str, want_id: int | None) -> int:
    """The offset field of the entry ``want_id`` (or the first) of the directory at ``base + at``."""
    d = RESOURCE_DIRECTORY.parse(data, base + at, what)
    count = d["named"] + d["ids"]
    if count > MAX_RESOURCE_ENTRIES:
        raise FormatError(what=what, detail=f"resource directory with {count} entries")
    for i in range(count):
        e = RESOURCE_ENTRY.parse(data, base + at + RESOURCE_DIRECTORY.size + i * RESOURCE_ENTRY.size, what)
        if want_id is None or (i >= d["named"] and e["name"] == want_id):
            return int(e["offset"])
    return -1


def file_version(data: bytes, what: str) -> Version | None:
    """The four-part file version (e.g. (6, 1, 7601, 17514)), or None when the file has none."""
    if len(data) < DOS_HEADER.size or data[:2] != b"MZ":
        return None
    pe = DOS_HEADER.parse(data, 0, what)["e_lfanew"]
    coff = COFF_HEADER.parse(data, pe, what)
    if coff["signature"] != PE_SIGNATURE:
        return None
    opt = pe + COFF_HEADER.size
    if len(data) < opt + 2:
        raise FormatError(what=what, detail="optional header cut short")
    magic = int.from_bytes(data[opt:opt + 2], "little")
    if magic not in DATA_DIRECTORIES_AT:
        raise FormatError(what=what, detail=f"unknown optional header magic {magic:#x}")
    dirs_at = opt + DATA_DIRECTORIES_AT[magic]
    if (RESOURCE_DIRECTORY_INDEX + 1) * DATA_DIRECTORY.size + DATA_DIRECTORIES_AT[magic] > coff["optional_size"]:
        return None  # no resource directory slot
    res = DATA_DIRECTORY.parse(data, dirs_at + RESOURCE_DIRECTORY_INDEX * DATA_DIRECTORY.size, what)
    if res["rva"] == 0:
        return None
    table = opt + coff["optional_size"]
    sections = [SECTION.parse(data, table + i * SECTION.size, what) for i in range(coff["sections"])]
    base = _rva_to_offset(sections, res["rva"], RESOURCE_DIRECTORY.size, what)
    at = 0
    for level, want in enumerate((RT_VERSION, None, None)):
        entry = _first_entry(data, base, at, what, want)
        if entry < 0:
            return None
        if level < 2 and not entry & SUBDIRECTORY:
            raise FormatError(what=what, detail="version resource is not a directory")
        at = entry & ~SUBDIRECTORY
    leaf = RESOURCE_DATA.parse(data, base + at, what)
    off = _rva_to_offset(sections, leaf["rva"], leaf["size"], what)
    head = VERSION_HEADER.parse(data, off, what)
    key_at = off + VERSION_HEADER.size
    if data[key_at:key_at + len(VERSION_KEY)] != VERSION_KEY:
        raise FormatError(what=what, detail="version resource without VS_VERSION_INFO")
    fixed_at = (key_at + len(VERSION_KEY) + 3) & ~3
    if head["value_length"] < FIXED_FILE_INFO.size or fixed_at + FIXED_FILE_INFO.size > off + head["length"]:
        return None
    fixed = FIXED_FILE_INFO.parse(data, fixed_at, what)
    if fixed["signature"] != FIXED_SIGNATURE:
        raise FormatError(what=what, detail="VS_FIXEDFILEINFO signature missing")
    ms, ls = fixed["file_ms"], fixed["file_ls"]
    return (ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF)
