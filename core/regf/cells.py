"""Decoding of single regf cell records (nk, vk, sk, db, subkey lists) and the name rules.

A record is decoded from its cell's data bytes (without the 4-byte size field) into a small
dataclass; nothing here follows offsets, so every function is safe on arbitrary bytes and raises only
`FormatError`. The name rules (Windows' case-insensitive order, lh hash, lf hint) are shared by the
reader (lookups) and the writer (sorted lists), so both agree with Windows by construction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import FormatError
from .c_regf import (DB, KEY_COMP_NAME, LIST_HEADER, NK, SK, VALUE_COMP_NAME, VK)

_U32 = struct.Struct("<I")

# Hot paths (a SYSTEM hive has ~20k keys and ~50k values): unpack nk/vk through compiled structs
# derived from the declared tables, so offsets still come from c_regf only.
_NK_ST = struct.Struct("<" + "".join(fmt for _, fmt in NK.fields))
_VK_ST = struct.Struct("<" + "".join(fmt for _, fmt in VK.fields))
_NK_IDX = {name: i for i, (name, _) in enumerate(NK.fields)}
_VK_NAMES = [name for name, _ in VK.fields]


class NkRecord(NamedTuple):
    """A key node as stored (offsets still relative to the hive bins data)."""

    flags: int
    timestamp: int
    parent: int
    subkey_count: int
    subkey_list: int
    value_count: int
    value_list: int
    security: int
    class_offset: int
    class_length: int
    max_subkey_name: int
    max_class_len: int
    max_value_name: int
    max_value_data: int
    name: str


class VkRecord(NamedTuple):
    """A value node as stored; the data itself is resolved by the hive (inline, cell or big data)."""

    name: str
    data_size: int      # raw field, bit 31 = inline
    data_offset: int
    data_type: int
    flags: int


_NK_RECORD_FIELDS = [f for f in NkRecord._fields if f != "name"]


@dataclass(frozen=True)
class SkRecord:
    flink: int
    blink: int
    refcount: int
    descriptor: bytes


@dataclass(frozen=True)
class DbRecord:
    segment_count: int
    segment_list: int


@dataclass(frozen=True)
class SubkeyList:
    """One list cell: ``kind`` is lf/lh/li (``offsets`` are nk cells) or ri (``offsets`` are lists)."""

    kind: str
    offsets: list[int]


def decode_name(raw: bytes, compressed: bool, what: str) -> str:
    """Key/value names: Latin-1 when compressed, else UTF-16LE (lone surrogates kept, for round trips)."""
    if compressed:
        return raw.decode("latin-1")
    if len(raw) % 2:
        raise FormatError(what=what, detail=f"UTF-16 name of odd length {len(raw)}")
    return raw.decode("utf-16-le", errors="surrogatepass")


def encode_name(name: str) -> tuple[bytes, bool]:
    """Name bytes as Windows stores them: compressed (Latin-1) when every character fits in a byte."""
    if all(ord(c) < 0x100 for c in name):
        return name.encode("latin-1"), True
    return name.encode("utf-16-le", errors="surrogatepass"), False


def upcase(name: str) -> str:
    """Windows' per-character upcase (RtlUpcaseUnicodeChar): one character never becomes two."""
    if name.isascii():
        return name.upper()
    out = []
    for c in name:
        u = c.upper()
        out.append(u if len(u) == 1 else c)
    return "".join(out)


def utf16_units(name: str) -> list[int]:
    """The UTF-16 code units of a name; Windows compares and hashes these, not code points."""
    raw = name.encode("utf-16-le", errors="surrogatepass")
    return [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)]


def sort_key(name: str) -> str:
    """Order of subkey lists: upper-cased names compared by UTF-16 unit (BOOT.md §9.2).

    Returned as a str whose code points are the UTF-16 units, so Python's string order is Windows' order.
    """
    up = upcase(name)
    if all(ord(c) <= 0xFFFF for c in up):
        return up
    return "".join(map(chr, utf16_units(up)))


def lh_hash(name: str) -> int:
    """lh leaf hash: H = 37*H + upcase(unit) over the UTF-16 units, modulo 2^32."""
    h = 0
    for unit in utf16_units(upcase(name)):
        h = (h * 37 + unit) & 0xFFFFFFFF
    return h


def lf_hint(name: str) -> bytes:
    """lf leaf hint: the first 4 characters as bytes (zero padded); all zero when one is above 0xFF."""
    head = name[:4]
    if any(ord(c) > 0xFF for c in head):
        return b"\0\0\0\0"
    return head.encode("latin-1").ljust(4, b"\0")


def name_bytes_len(name: str) -> int:
    """Length in bytes of a name counted as UTF-16 (the unit of the nk max-name-length fields)."""
    return len(name.encode("utf-16-le", errors="surrogatepass"))


def parse_nk(data: bytes, where: str) -> NkRecord:
    what = f"nk record at {where}"
    if len(data) < NK.size:
        NK.parse(data, 0, what)  # raises the uniform "need N bytes" FormatError
    t = _NK_ST.unpack_from(data, 0)
    if t[_NK_IDX["signature"]] != b"nk":
        raise FormatError(what=what, detail=f"bad signature {t[_NK_IDX['signature']]!r}")
    name_length = t[_NK_IDX["name_length"]]
    flags = t[_NK_IDX["flags"]]
    end = NK.size + name_length
    if end > len(data):
        raise FormatError(what=what, detail=f"name of {name_length} bytes overruns the {len(data)}-byte cell")
    name = decode_name(bytes(data[NK.size:end]), bool(flags & KEY_COMP_NAME), what)
    values = [t[_NK_IDX[f]] for f in _NK_RECORD_FIELDS]
    return NkRecord._make([*values, name])


def parse_vk(data: bytes, where: str) -> VkRecord:
    what = f"vk record at {where}"
    if len(data) < VK.size:
        VK.parse(data, 0, what)  # raises the uniform "need N bytes" FormatError
    t = _VK_ST.unpack_from(data, 0)
    f = dict(zip(_VK_NAMES, t))
    if f["signature"] != b"vk":
        raise FormatError(what=what, detail=f"bad signature {f['signature']!r}")
    end = VK.size + f["name_length"]
    if end > len(data):
        raise FormatError(what=what, detail=f"name of {f['name_length']} bytes overruns the {len(data)}-byte cell")
    name = decode_name(bytes(data[VK.size:end]), bool(f["flags"] & VALUE_COMP_NAME), what)
    return VkRecord(name=name, data_size=f["data_size"], data_offset=f["data_offset"],
                    data_type=f["data_type"], flags=f["flags"])


def parse_sk(data: bytes, where: str) -> SkRecord:
    what = f"sk record at {where}"
    f = SK.parse(data, 0, what)
    if f["signature"] != b"sk":
        raise FormatError(what=what, detail=f"bad signature {f['signature']!r}")
    end = SK.size + f["descriptor_size"]
    if end > len(data):
        raise FormatError(what=what, detail=f"descriptor of {f['descriptor_size']} bytes overruns the cell")
    return SkRecord(flink=f["flink"], blink=f["blink"], refcount=f["refcount"],
                    descriptor=bytes(data[SK.size:end]))


def parse_db(data: bytes, where: str) -> DbRecord:
    what = f"db record at {where}"
    f = DB.parse(data, 0, what)
    if f["signature"] != b"db":
        raise FormatError(what=what, detail=f"bad signature {f['signature']!r}")
    if f["segment_count"] == 0:
        raise FormatError(what=what, detail="no segments")
    return DbRecord(segment_count=f["segment_count"], segment_list=f["segment_list"])


def parse_offset_array(data: bytes, count: int, what: str) -> list[int]:
    """``count`` uint32 offsets at the start of a cell (value lists, db segment lists)."""
    if count * 4 > len(data):
        raise FormatError(what=what, detail=f"{count} entries do not fit in a {len(data)}-byte cell")
    return list(struct.unpack_from(f"<{count}I", data, 0))


def parse_subkey_list(data: bytes, where: str) -> SubkeyList:
    """One lf/lh/li/ri cell; lf/lh entries are (offset, hint/hash) pairs, li/ri plain offsets."""
    what = f"subkey list at {where}"
    f = LIST_HEADER.parse(data, 0, what)
    kind = f["signature"].decode("latin-1")
    count = f["count"]
    if kind in ("lf", "lh"):
        stride = 8
    elif kind in ("li", "ri"):
        stride = 4
    else:
        raise FormatError(what=what, detail=f"bad signature {f['signature']!r}")
    if LIST_HEADER.size + count * stride > len(data):
        raise FormatError(what=what, detail=f"{count} entries do not fit in a {len(data)}-byte cell")
    offsets = [_U32.unpack_from(data, LIST_HEADER.size + i * stride)[0] for i in range(count)]
    return SubkeyList(kind=kind, offsets=offsets)


def build_leaf(kind: str, entries: list[tuple[int, str]]) -> bytes:
    """A leaf list cell's data for (nk offset, name) entries already in Windows order."""
    out = bytearray(LIST_HEADER.build(signature=kind.encode(), count=len(entries)))
    for off, name in entries:
        out += _U32.pack(off)
        if kind == "lh":
            out += _U32.pack(lh_hash(name))
        elif kind == "lf":
            out += lf_hint(name)
    return bytes(out)


def build_ri(leaves: list[int]) -> bytes:
    out = bytearray(LIST_HEADER.build(signature=b"ri", count=len(leaves)))
    for off in leaves:
        out += _U32.pack(off)
    return bytes(out)
