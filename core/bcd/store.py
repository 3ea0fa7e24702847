"""A BCD store as objects and elements over a regf hive, and the device rewrite used after restore.

Layout (BOOT.md §8.1): ``Objects\\{guid}\\Description`` value ``Type`` (object type) and
``Objects\\{guid}\\Elements\\XXXXXXXX`` value ``Element`` (element type = key name in hex). Element
values are decoded by the format bits of their type (device, string, object, object list, integer,
boolean, integer list); anything that does not match the expected registry type is kept as bytes.

`BcdStore.rewrite_devices` maps old partition identities to new ones in every device element of
every object (nested descriptors included) and reports each change; the edits are same-size
overwrites, then `save` writes the hive atomically with a backup.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import FormatError, UsageError
from ..regf.hive import Hive, Key
from ..regf.values import RegType, decode_value, encode_value
from ..regf.writer import HiveWriter
from .device import (Descriptor, DeviceElement, GptPartitionId, MbrPartitionId, PartitionDevice, PartitionId, RawDescriptor,
                     decode_element, encode_element, map_descriptors, rewrite_raw_partitions)
from .elements import (WELL_KNOWN_OBJECTS, ElementFormat, element_format, element_name, object_type_name)

ElementValue = Union[DeviceElement, str, int, bool, list[str], list[int], bytes]

_ALIASES = {alias: guid for guid, alias in WELL_KNOWN_OBJECTS.items()}


@dataclass(frozen=True)
class BcdElement:
    code: int
    name: str
    reg_type: int
    raw: bytes
    key: Key

    @property
    def format(self) -> int:
        return element_format(self.code)

    @property
    def value(self) -> ElementValue:
        return decode_element_value(self.code, self.reg_type, self.raw)


@dataclass(frozen=True)
class DeviceChange:
    """One rewritten partition reference: where, and old -> new identity."""

    object_guid: str
    object_alias: str | None
    element: int
    element_name: str
    old: PartitionId
    new: PartitionId


def decode_element_value(code: int, reg_type: int, raw: bytes) -> ElementValue:
    fmt = element_format(code)
    try:
        if fmt == ElementFormat.DEVICE and reg_type == RegType.BINARY:
            return decode_element(raw)
        if fmt in (ElementFormat.STRING, ElementFormat.OBJECT) and reg_type == RegType.SZ:
            return str(decode_value(reg_type, raw))
        if fmt == ElementFormat.OBJECT_LIST and reg_type == RegType.MULTI_SZ:
            v = decode_value(reg_type, raw)
            return v if isinstance(v, list) else raw
        if fmt == ElementFormat.INTEGER and reg_type == RegType.BINARY and 1 <= len(raw) <= 8:
            return int.from_bytes(raw, "little")
        if fmt == ElementFormat.BOOLEAN and reg_type == RegType.BINARY and 1 <= len(raw) <= 8:
            return any(raw)
        if fmt == ElementFormat.INTEGER_LIST and reg_type == RegType.BINARY and len(raw) % 8 == 0:
            return [int(x) for x in struct.unpack(f"<{len(raw) // 8}Q", raw)]
    except FormatError:
        pass
    return bytes(raw)


def encode_element_value(code: int, value: ElementValue) -> tuple[int, bytes]:
    """The registry type and bytes Windows stores for ``value`` in element ``code`` (by its format bits):
    the inverse of `decode_element_value`. Integers are 8 bytes and booleans 1, as bcdedit writes them;
    raw bytes are stored as REG_BINARY unchanged."""
    fmt = element_format(code)
    if fmt == ElementFormat.DEVICE and isinstance(value, DeviceElement):
        return RegType.BINARY, encode_element(value)
    if fmt in (ElementFormat.STRING, ElementFormat.OBJECT) and isinstance(value, str):
        return RegType.SZ, encode_value(RegType.SZ, value)
    items = value if isinstance(value, list) else None
    if fmt == ElementFormat.OBJECT_LIST and items is not None and all(isinstance(v, str) for v in items):
        return RegType.MULTI_SZ, encode_value(RegType.MULTI_SZ, [str(v) for v in items])
    if fmt == ElementFormat.BOOLEAN and isinstance(value, bool):
        return RegType.BINARY, bytes([int(value)])
    if fmt == ElementFormat.INTEGER and isinstance(value, int) and not isinstance(value, bool):
        return RegType.BINARY, struct.pack("<Q", value)
    if fmt == ElementFormat.INTEGER_LIST and items is not None and all(isinstance(v, int) for v in items):
        return RegType.BINARY, struct.pack(f"<{len(items)}Q", *items)
    if isinstance(value, bytes):
        return RegType.BINARY, value
    raise UsageError(detail=f"element {code:08x} cannot hold {type(value).__name__} {value!r}")


class BcdObject:
    def __init__(self, key: Key) -> None:
        self.key = key
        name = key.name
        try:
            self.guid = str(uuid.UUID(name.strip("{}")))
        except ValueError as e:
            raise FormatError(what="BCD store", detail=f"object key {name!r} is not a GUID") from e

    def __repr__(self) -> str:
        return f"BcdObject({self.alias or self.guid}, {object_type_name(self.type or 0)})"

    @property
    def alias(self) -> str | None:
        return WELL_KNOWN_OBJECTS.get(self.guid)

    @property
    def type(self) -> int | None:
        desc = self.key.subkey("Description")
        v = desc.value("Type") if desc is not None else None
        if v is None:
            return None
        t = v.value
        return t if isinstance(t, int) else None

    @property
    def type_name(self) -> str:
        t = self.type
        return "no type" if t is None else object_type_name(t)

    def elements(self) -> list[BcdElement]:
        container = self.key.subkey("Elements")
        if container is None:
            return []
        out = []
        otype = self.type
        for k in container.subkeys():
            try:
                code = int(k.name, 16)
            except ValueError:
                continue  # not an element key; bcdedit ignores it too
            if not 0 <= code <= 0xFFFFFFFF or len(k.name) > 8:
                continue
            v = k.value("Element")
            if v is None:
                continue
            out.append(BcdElement(code, element_name(code, otype), v.type, v.data, k))
        return out

    def element(self, code: int) -> BcdElement | None:
        for e in self.elements():
            if e.code == code:
                return e
        return None


class BcdStore:
    def __init__(self, hive: Hive) -> None:
        self.hive = hive
        objs = hive.find("Objects")
        if objs is None:
            raise FormatError(what=f"BCD store {hive.name}", detail="no Objects key: not a BCD store")
        self._objects_key = objs
        self._writer: HiveWriter | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, allow_dirty: bool = False) -> BcdStore:
        return cls(Hive.open(path, allow_dirty=allow_dirty))

    @property
    def writer(self) -> HiveWriter:
        if self._writer is None:
            self._writer = HiveWriter(self.hive)  # refuses dirty hives
        return self._writer

    def objects(self) -> list[BcdObject]:
        return [BcdObject(k) for k in self._objects_key.subkeys()]

    def object(self, ident: str) -> BcdObject | None:
        """An object by GUID (with or without braces) or well-known alias such as ``{bootmgr}``."""
        guid = _ALIASES.get(ident.lower(), ident.strip("{}").lower())
        for o in self.objects():
            if o.guid == guid:
                return o
        return None

    def set_element(self, obj: BcdObject, code: int, reg_type: int, raw: bytes) -> None:
        """Create or replace element ``code`` of ``obj`` with raw value data."""
        elements = self.writer.ensure_key(f"{obj.key.path}\\Elements")
        existing = next((k for k in elements.subkeys() if _same_code(k.name, code)), None)
        key = existing if existing is not None else self.writer.add_key(elements, f"{code:08x}")
        self.writer.set_value(key, "Element", reg_type, raw)

    def rewrite_devices(self, mapping: dict[PartitionId, PartitionId]) -> list[DeviceChange]:
        """Point every device element (all objects, all device-format elements, nested descriptors) that
        names an old partition in ``mapping`` at the new one; return what changed."""
        for old, new in mapping.items():
            if not isinstance(old, (MbrPartitionId, GptPartitionId)) or not isinstance(new, (MbrPartitionId, GptPartitionId)):
                raise UsageError(detail=f"mapping entries must be partition identities, got {old!r} -> {new!r}")
        changes: list[DeviceChange] = []
        for obj in self.objects():
            for el in obj.elements():
                if el.format != ElementFormat.DEVICE or el.reg_type != RegType.BINARY:
                    continue
                value = el.value
                if not isinstance(value, DeviceElement):
                    continue
                found: list[tuple[PartitionId, PartitionId]] = []

                def patch(d: Descriptor, found: list[tuple[PartitionId, PartitionId]] = found) -> Descriptor:
                    if isinstance(d, PartitionDevice) and d.identity in mapping:
                        old = d.identity
                        found.append((old, mapping[old]))
                        return d.with_identity(mapping[old])
                    if isinstance(d, RawDescriptor):
                        raw, hits = rewrite_raw_partitions(d.raw, mapping)
                        found.extend(hits)
                        return RawDescriptor(raw)
                    return d

                new_dev = map_descriptors(value.device, patch)
                trailing, hits = rewrite_raw_partitions(value.trailing, mapping)
                found.extend(hits)
                new_raw = encode_element(DeviceElement(value.options, new_dev, trailing))
                if new_raw != el.raw:
                    self.writer.set_value(el.key, "Element", RegType.BINARY, new_raw)
                for old, new in found:
                    changes.append(DeviceChange(obj.guid, obj.alias, el.code, el.name, old, new))
        return changes

    def save(self, path: str | os.PathLike[str], *, backup: bool = True) -> Path | None:
        return self.writer.save(path, backup=backup)


def _same_code(name: str, code: int) -> bool:
    try:
        return int(name, 16) == code
    except ValueError:
        return False
