"""Registry value types and the conversion between raw value data and Python values.

The raw bytes are the truth (a round trip must never change them); `decode_value` gives a convenient
view, and `encode_value` builds the bytes Windows would store for a Python value.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from ..errors import UsageError


class RegType(IntEnum):
    NONE = 0
    SZ = 1
    EXPAND_SZ = 2
    BINARY = 3
    DWORD = 4
    DWORD_BIG_ENDIAN = 5
    LINK = 6
    MULTI_SZ = 7
    RESOURCE_LIST = 8
    FULL_RESOURCE_DESCRIPTOR = 9
    RESOURCE_REQUIREMENTS_LIST = 10
    QWORD = 11


DecodedValue = str | int | list[str] | bytes

_STRING_TYPES = (RegType.SZ, RegType.EXPAND_SZ, RegType.LINK)


def _utf16(data: bytes) -> str:
    # Odd trailing byte: seen in hand-edited hives; it carries no character, drop it.
    if len(data) % 2:
        data = data[:-1]
    return data.decode("utf-16-le", errors="surrogatepass")


def decode_value(data_type: int, data: bytes) -> DecodedValue:
    """The Python view of value data: str, int, list[str], or the raw bytes when nothing else fits."""
    if data_type in _STRING_TYPES:
        text = _utf16(data)
        nul = text.find("\0")
        return text if nul < 0 else text[:nul]
    if data_type == RegType.MULTI_SZ:
        text = _utf16(data)
        items = text.split("\0")
        # A well-formed list ends with two NULs: drop the empty tail they produce.
        while items and items[-1] == "":
            items.pop()
        return items
    if data_type == RegType.DWORD and len(data) == 4:
        return int(struct.unpack("<I", data)[0])
    if data_type == RegType.DWORD_BIG_ENDIAN and len(data) == 4:
        return int(struct.unpack(">I", data)[0])
    if data_type == RegType.QWORD and len(data) == 8:
        return int(struct.unpack("<Q", data)[0])
    return bytes(data)


def encode_value(data_type: int, value: DecodedValue) -> bytes:
    """Bytes Windows would store for ``value`` (strings NUL-terminated, lists double-NUL-terminated)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if data_type in _STRING_TYPES and isinstance(value, str):
        return (value + "\0").encode("utf-16-le", errors="surrogatepass")
    if data_type == RegType.MULTI_SZ and isinstance(value, list):
        return ("".join(s + "\0" for s in value) + "\0").encode("utf-16-le", errors="surrogatepass")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            if data_type == RegType.DWORD:
                return struct.pack("<I", value)
            if data_type == RegType.DWORD_BIG_ENDIAN:
                return struct.pack(">I", value)
            if data_type == RegType.QWORD:
                return struct.pack("<Q", value)
        except struct.error as e:
            raise UsageError(detail=f"integer {value} does not fit registry type {data_type}: {e}") from e
    raise UsageError(detail=f"cannot encode {type(value).__name__} as registry type {data_type}")
