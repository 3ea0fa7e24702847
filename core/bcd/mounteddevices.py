"""Codec of ``HKLM\\SYSTEM\\MountedDevices`` values and the rewrite of drive letters after restore.

Value data (BOOT.md §10.2): 12 bytes = MBR disk signature (uint32) + partition byte offset
(uint64); ``DMIO:ID:`` + 16-byte partition GUID (mixed-endian) = GPT partition; anything else (UTF-16
device paths of CD-ROMs, USB sticks ...) is kept as is. Names are ``\\DosDevices\\X:`` for letters,
``\\??\\Volume{guid}`` for volume GUID paths (and ``#{guid}`` on Windows 10).
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass
from typing import Union

from ..errors import UsageError
from ..regf.hive import Hive
from ..regf.values import RegType
from ..regf.writer import HiveWriter
from .device import GptPartitionId, MbrPartitionId, PartitionId

KEY = "MountedDevices"
GPT_PREFIX = b"DMIO:ID:"
_MBR = struct.Struct("<IQ")
_LETTER = re.compile(r"^\\DosDevices\\([A-Za-z]):$")


@dataclass(frozen=True)
class MbrVolume:
    signature: int
    offset: int


@dataclass(frozen=True)
class GptVolume:
    part_guid: str  # lowercase, dashed


@dataclass(frozen=True)
class OtherVolume:
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw[: len(self.raw) - len(self.raw) % 2].decode("utf-16-le", errors="replace")


MountedVolume = Union[MbrVolume, GptVolume, OtherVolume]


@dataclass(frozen=True)
class MountedChange:
    name: str
    old: MountedVolume
    new: MountedVolume


def decode_mounted(data: bytes) -> MountedVolume:
    if len(data) == _MBR.size:
        sig, off = _MBR.unpack(data)
        return MbrVolume(sig, off)
    if len(data) == len(GPT_PREFIX) + 16 and data.startswith(GPT_PREFIX):
        return GptVolume(str(uuid.UUID(bytes_le=bytes(data[len(GPT_PREFIX):]))))
    return OtherVolume(bytes(data))


def encode_mounted(v: MountedVolume) -> bytes:
    if isinstance(v, MbrVolume):
        return _MBR.pack(v.signature, v.offset)
    if isinstance(v, GptVolume):
        return GPT_PREFIX + uuid.UUID(v.part_guid).bytes_le
    return v.raw


def mounted_devices(hive: Hive) -> dict[str, MountedVolume]:
    """Every value of MountedDevices (name -> decoded data); empty when the key is absent."""
    key = hive.find(KEY)
    if key is None:
        return {}
    return {v.name: decode_mounted(v.data) for v in key.values()}


def drive_letters(hive: Hive) -> dict[str, MountedVolume]:
    """Drive letter (upper case, e.g. ``C``) -> volume, from the ``\\DosDevices\\X:`` values."""
    out = {}
    for name, vol in mounted_devices(hive).items():
        m = _LETTER.match(name)
        if m:
            out[m.group(1).upper()] = vol
    return out


def _target(vol: MountedVolume, mapping: dict[PartitionId, PartitionId]) -> MountedVolume | None:
    new: PartitionId | None = None
    if isinstance(vol, MbrVolume):
        new = mapping.get(MbrPartitionId(vol.signature, vol.offset))
    elif isinstance(vol, GptVolume):
        # MountedDevices stores only the partition GUID: match on it, whatever the disk GUID.
        for old, cand in mapping.items():
            if isinstance(old, GptPartitionId) and old.part_guid == vol.part_guid:
                new = cand
                break
    if new is None:
        return None
    if isinstance(new, MbrPartitionId):
        return MbrVolume(new.signature, new.offset)
    return GptVolume(new.part_guid)


def rewrite_mounted_devices(writer: HiveWriter, mapping: dict[PartitionId, PartitionId]) -> list[MountedChange]:
    """Rewrite every value (letters and volume GUID paths) naming an old partition; return the changes.

    Same-style rewrites keep the value size (in-place overwrite); MBR <-> GPT changes resize it.
    """
    for old, new in mapping.items():
        if not isinstance(old, (MbrPartitionId, GptPartitionId)) or not isinstance(new, (MbrPartitionId, GptPartitionId)):
            raise UsageError(detail=f"mapping entries must be partition identities, got {old!r} -> {new!r}")
    key = writer.hive.find(KEY)
    if key is None:
        return []
    changes = []
    for v in key.values():
        if v.type != RegType.BINARY:
            continue
        vol = decode_mounted(v.data)
        target = _target(vol, mapping)
        if target is None or target == vol:
            continue
        writer.set_value(key, v.name, RegType.BINARY, encode_mounted(target))
        changes.append(MountedChange(v.name, vol, target))
    return changes


def set_drive_letter(writer: HiveWriter, letter: str, volume: MountedVolume) -> None:
    """Create or replace ``\\DosDevices\\X:`` for ``volume``."""
    if len(letter) != 1 or not letter.isalpha():
        raise UsageError(detail=f"invalid drive letter {letter!r}")
    key = writer.ensure_key(KEY)
    writer.set_value(key, f"\\DosDevices\\{letter.upper()}:", RegType.BINARY, encode_mounted(volume))
