"""Codec of BCD device elements (REG_BINARY values of format 1), BOOT.md §8.4.

An element is a 16-byte options-object GUID followed by a *device descriptor*: type, flags, size
(counted from the descriptor start), reserved, then a type-specific payload. Descriptors nest: a
locate device may carry a parent, a ramdisk/file device carries a file path whose device is another
descriptor, a VHD carries a file device. Kinds decoded: boot (5), partition (6: MBR offset+signature,
GPT partition+disk GUID), locate (8), block I/O (0) with ramdisk (3), file (5), virtual disk (6).

Byte-exactness: every decoded node is re-encoded at decode time and compared with its source bytes;
a node that would not reproduce them (an unknown kind, a variant we do not understand, inconsistent
sizes) is kept as a `RawDescriptor`, so ``encode(decode(x)) == x`` for every input. Raw descriptors are
still searched for embedded partition descriptors by `rewrite_raw_partitions` (BOOT.md §8.4),
so no partition reference escapes a rewrite.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Union

from ..errors import FormatError
from ..structs import Struct

DESCRIPTOR_HEADER = Struct("device descriptor header", [
    ("device_type", "I"),   # 0 block I/O, 5 boot, 6 partition, 8 locate
    ("flags", "I"),
    ("size", "I"),          # counted from the descriptor start, header included
    ("reserved", "I"),
])

PARTITION_PAYLOAD = Struct("partition descriptor payload", [
    ("partition_id", "16s"),  # MBR: uint64 byte offset + 8 zero bytes; GPT: partition unique GUID
    ("unknown", "I"),
    ("style", "I"),           # 0 GPT, 1 MBR, 2 raw
    ("disk_id", "16s"),       # MBR: uint32 disk signature + 12 zero bytes; GPT: disk GUID
])

LOCATE_HEADER = Struct("locate payload header", [
    ("locate_type", "I"),     # 0: path of an element (below), 1: a literal path
    ("element", "I"),         # element type whose path is searched for (0x12000002, 0x22000002)
    ("parent_offset", "I"),   # from the descriptor start; 0 = no parent descriptor
])

FILE_PATH_HEADER = Struct("file path header", [
    ("version", "I"),         # 1
    ("length", "I"),          # from this header to the end of the path
    ("path_type", "I"),       # 5: a device descriptor follows, then the path
])

RAMDISK_HEADER = Struct("ramdisk payload header", [
    ("local_type", "I"),      # 3
    ("image_base", "Q"),
    ("image_size", "Q"),
    ("image_offset", "I"),
])

TYPE_BLOCK_IO, TYPE_BOOT, TYPE_PARTITION, TYPE_LOCATE = 0, 5, 6, 8
LOCAL_RAMDISK, LOCAL_FILE, LOCAL_VHD = 3, 5, 6
STYLE_GPT, STYLE_MBR, STYLE_RAW = 0, 1, 2
OPTIONS_SIZE = 16
VHD_PREFIX = 20  # bytes between a VHD's local type and its file device (meaning unknown, kept as is)

# Real stores nest at most 4 levels (locate -> vhd -> file -> locate, pybcd BCDTest); 16 bounds the
# recursion on hostile input while leaving room for kinds we have not seen.
MAX_NESTING = 16

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PARTITION_MAGIC = bytes.fromhex("06000000 00000000 48000000 00000000")


@dataclass(frozen=True)
class MbrPartitionId:
    """An MBR partition as BCD and MountedDevices name it: disk signature + byte offset."""

    signature: int
    offset: int


@dataclass(frozen=True)
class GptPartitionId:
    """A GPT partition: disk GUID + partition unique GUID (lowercase, dashed, no braces)."""

    disk_guid: str
    part_guid: str


PartitionId = Union[MbrPartitionId, GptPartitionId]


@dataclass(frozen=True)
class RawDescriptor:
    """A descriptor kept byte for byte (unknown kind or not reproducible by our decoder)."""

    raw: bytes


@dataclass(frozen=True)
class BootDevice:
    flags: int
    reserved: int
    payload: bytes  # 0x38 zero bytes in every sample


@dataclass(frozen=True)
class PartitionDevice:
    flags: int
    reserved: int
    partition_id: bytes
    unknown: int
    style: int
    disk_id: bytes
    tail: bytes  # 16 zero bytes in every sample

    @property
    def identity(self) -> PartitionId | None:
        if self.style == STYLE_MBR:
            return MbrPartitionId(signature=_U32.unpack_from(self.disk_id)[0], offset=_U64.unpack_from(self.partition_id)[0])
        if self.style == STYLE_GPT:
            return GptPartitionId(disk_guid=str(uuid.UUID(bytes_le=self.disk_id)),
                                  part_guid=str(uuid.UUID(bytes_le=self.partition_id)))
        return None

    def with_identity(self, new: PartitionId) -> PartitionDevice:
        """Same descriptor pointing at ``new`` (bytes we do not own are kept when the style stays)."""
        if isinstance(new, MbrPartitionId):
            keep = self.style == STYLE_MBR
            pid = _U64.pack(new.offset) + (self.partition_id[8:] if keep else bytes(8))
            did = _U32.pack(new.signature) + (self.disk_id[4:] if keep else bytes(12))
            return replace(self, partition_id=pid, disk_id=did, style=STYLE_MBR)
        return replace(self, partition_id=uuid.UUID(new.part_guid).bytes_le,
                       disk_id=uuid.UUID(new.disk_guid).bytes_le, style=STYLE_GPT)


@dataclass(frozen=True)
class FilePath:
    """A path on a device (ramdisk/file/VHD payloads): header, device descriptor, UTF-16 path."""

    version: int
    path_type: int
    device: Descriptor | None  # None: no nested device (path_type != 5); ``path`` holds the rest
    path_raw: bytes

    @property
    def path(self) -> str:
        return _utf16(self.path_raw)


@dataclass(frozen=True)
class LocateDevice:
    flags: int
    reserved: int
    locate_type: int
    element: int
    path_raw: bytes
    parent: Descriptor | None

    @property
    def path(self) -> str:
        return _utf16(self.path_raw)


@dataclass(frozen=True)
class RamdiskDevice:
    flags: int
    reserved: int
    image_base: int
    image_size: int
    image_offset: int
    file: FilePath


@dataclass(frozen=True)
class FileDevice:
    flags: int
    reserved: int
    file: FilePath


@dataclass(frozen=True)
class VhdDevice:
    flags: int
    reserved: int
    prefix: bytes
    inner: Descriptor


Descriptor = Union[RawDescriptor, BootDevice, PartitionDevice, LocateDevice, RamdiskDevice, FileDevice, VhdDevice]


@dataclass(frozen=True)
class DeviceElement:
    """A whole device element: options object GUID (zero if none), the descriptor, any trailing bytes."""

    options: bytes
    device: Descriptor
    trailing: bytes = b""

    @property
    def options_guid(self) -> str | None:
        return None if self.options == bytes(16) else str(uuid.UUID(bytes_le=self.options))


def _utf16(raw: bytes) -> str:
    text = raw[: len(raw) - len(raw) % 2].decode("utf-16-le", errors="replace")
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


# --- encoding ---------------------------------------------------------------------------------------


def _header(device_type: int, flags: int, reserved: int, payload: bytes) -> bytes:
    return DESCRIPTOR_HEADER.build(device_type=device_type, flags=flags, size=DESCRIPTOR_HEADER.size + len(payload),
                                   reserved=reserved) + payload


def _encode_file_path(fp: FilePath) -> bytes:
    body = (encode_descriptor(fp.device) if fp.device is not None else b"") + fp.path_raw
    return FILE_PATH_HEADER.build(version=fp.version, length=FILE_PATH_HEADER.size + len(body),
                                  path_type=fp.path_type) + body


def encode_descriptor(d: Descriptor) -> bytes:
    if isinstance(d, RawDescriptor):
        return d.raw
    if isinstance(d, BootDevice):
        return _header(TYPE_BOOT, d.flags, d.reserved, d.payload)
    if isinstance(d, PartitionDevice):
        payload = PARTITION_PAYLOAD.build(partition_id=d.partition_id, unknown=d.unknown, style=d.style,
                                          disk_id=d.disk_id) + d.tail
        return _header(TYPE_PARTITION, d.flags, d.reserved, payload)
    if isinstance(d, LocateDevice):
        parent = encode_descriptor(d.parent) if d.parent is not None else b""
        parent_offset = DESCRIPTOR_HEADER.size + LOCATE_HEADER.size + len(d.path_raw) if d.parent is not None else 0
        payload = LOCATE_HEADER.build(locate_type=d.locate_type, element=d.element,
                                      parent_offset=parent_offset) + d.path_raw + parent
        return _header(TYPE_LOCATE, d.flags, d.reserved, payload)
    if isinstance(d, RamdiskDevice):
        payload = RAMDISK_HEADER.build(local_type=LOCAL_RAMDISK, image_base=d.image_base, image_size=d.image_size,
                                       image_offset=d.image_offset) + _encode_file_path(d.file)
        return _header(TYPE_BLOCK_IO, d.flags, d.reserved, payload)
    if isinstance(d, FileDevice):
        return _header(TYPE_BLOCK_IO, d.flags, d.reserved, _U32.pack(LOCAL_FILE) + _encode_file_path(d.file))
    if isinstance(d, VhdDevice):
        payload = _U32.pack(LOCAL_VHD) + d.prefix + encode_descriptor(d.inner)
        return _header(TYPE_BLOCK_IO, d.flags, d.reserved, payload)
    raise TypeError(f"not a device descriptor: {d!r}")


def encode_element(e: DeviceElement) -> bytes:
    return e.options + encode_descriptor(e.device) + e.trailing


# --- decoding ---------------------------------------------------------------------------------------


def _descriptor_span(buf: bytes, off: int, end: int) -> int:
    """Size of the descriptor at ``off`` after bounds checks (FormatError when it does not fit)."""
    h = DESCRIPTOR_HEADER.parse(buf, off, "device descriptor")
    size = h["size"]
    if size < DESCRIPTOR_HEADER.size or off + size > end:
        raise FormatError(what="device descriptor", detail=f"size {size:#x} at {off:#x} does not fit in {end - off:#x} bytes")
    return int(size)


def _decode_file_path(buf: bytes, off: int, end: int, depth: int) -> FilePath:
    h = FILE_PATH_HEADER.parse(buf, off, "file path")
    if h["length"] != end - off:
        raise FormatError(what="file path", detail=f"length {h['length']:#x} != {end - off:#x}")
    body = off + FILE_PATH_HEADER.size
    if h["path_type"] == 5 and end - body >= DESCRIPTOR_HEADER.size:
        span = _descriptor_span(buf, body, end)
        dev = decode_descriptor(buf[body:body + span], depth + 1)
        return FilePath(h["version"], h["path_type"], dev, bytes(buf[body + span:end]))
    return FilePath(h["version"], h["path_type"], None, bytes(buf[body:end]))


def _decode_known(raw: bytes, depth: int) -> Descriptor:
    h = DESCRIPTOR_HEADER.parse(raw, 0, "device descriptor")
    end = len(raw)
    payload = DESCRIPTOR_HEADER.size
    dtype, flags, reserved = h["device_type"], h["flags"], h["reserved"]
    if dtype == TYPE_BOOT:
        return BootDevice(flags, reserved, raw[payload:])
    if dtype == TYPE_PARTITION:
        p = PARTITION_PAYLOAD.parse(raw, payload, "partition descriptor")
        return PartitionDevice(flags, reserved, p["partition_id"], p["unknown"], p["style"], p["disk_id"],
                               raw[payload + PARTITION_PAYLOAD.size:])
    if dtype == TYPE_LOCATE:
        loc = LOCATE_HEADER.parse(raw, payload, "locate device")
        path_start = payload + LOCATE_HEADER.size
        parent: Descriptor | None = None
        if loc["parent_offset"]:
            po = loc["parent_offset"]
            if not path_start <= po < end:
                raise FormatError(what="locate device", detail=f"parent offset {po:#x} outside {end:#x}")
            span = _descriptor_span(raw, po, end)
            parent = decode_descriptor(raw[po:po + span], depth + 1)
            path_raw = raw[path_start:po]
        else:
            path_raw = raw[path_start:]
        return LocateDevice(flags, reserved, loc["locate_type"], loc["element"], path_raw, parent)
    if dtype == TYPE_BLOCK_IO:
        local = _U32.unpack_from(raw, payload)[0] if end - payload >= 4 else -1
        if local == LOCAL_RAMDISK:
            r = RAMDISK_HEADER.parse(raw, payload, "ramdisk device")
            fp = _decode_file_path(raw, payload + RAMDISK_HEADER.size, end, depth)
            return RamdiskDevice(flags, reserved, r["image_base"], r["image_size"], r["image_offset"], fp)
        if local == LOCAL_FILE:
            return FileDevice(flags, reserved, _decode_file_path(raw, payload + 4, end, depth))
        if local == LOCAL_VHD:
            inner_off = payload + 4 + VHD_PREFIX
            span = _descriptor_span(raw, inner_off, end)
            if inner_off + span != end:
                raise FormatError(what="vhd device", detail="inner descriptor does not end the payload")
            return VhdDevice(flags, reserved, raw[payload + 4:inner_off], decode_descriptor(raw[inner_off:end], depth + 1))
    return RawDescriptor(raw)


def decode_descriptor(raw: bytes, depth: int = 0) -> Descriptor:
    """Decode one descriptor (``raw`` is exactly its bytes); never fails: falls back to `RawDescriptor`."""
    raw = bytes(raw)
    if depth > MAX_NESTING:
        return RawDescriptor(raw)
    try:
        d = _decode_known(raw, depth)
    except FormatError:
        return RawDescriptor(raw)
    # Keep the decoded form only if it reproduces the source exactly (see module docstring).
    return d if encode_descriptor(d) == raw else RawDescriptor(raw)


def decode_element(data: bytes) -> DeviceElement:
    """Decode a device element; only a too-short value is a `FormatError`."""
    data = bytes(data)
    if len(data) < OPTIONS_SIZE + DESCRIPTOR_HEADER.size:
        raise FormatError(what="BCD device element", detail=f"{len(data)} bytes is shorter than 32")
    try:
        span = _descriptor_span(data, OPTIONS_SIZE, len(data))
    except FormatError:
        return DeviceElement(data[:OPTIONS_SIZE], RawDescriptor(data[OPTIONS_SIZE:]))
    end = OPTIONS_SIZE + span
    return DeviceElement(data[:OPTIONS_SIZE], decode_descriptor(data[OPTIONS_SIZE:end]), data[end:])


# --- walking and rewriting --------------------------------------------------------------------------


def children(d: Descriptor) -> list[Descriptor]:
    if isinstance(d, LocateDevice):
        return [d.parent] if d.parent is not None else []
    if isinstance(d, (RamdiskDevice, FileDevice)):
        return [d.file.device] if d.file.device is not None else []
    if isinstance(d, VhdDevice):
        return [d.inner]
    return []


def iter_descriptors(d: Descriptor) -> Iterator[Descriptor]:
    """``d`` and every descriptor nested in it, outermost first."""
    yield d
    for c in children(d):
        yield from iter_descriptors(c)


def partitions(e: DeviceElement) -> list[PartitionId]:
    """Identities of every partition an element refers to (nested and raw-embedded ones included)."""
    out: list[PartitionId] = []
    for d in iter_descriptors(e.device):
        if isinstance(d, PartitionDevice) and d.identity is not None:
            out.append(d.identity)
        elif isinstance(d, RawDescriptor):
            out.extend(_raw_partitions(d.raw))
    return out


def map_descriptors(d: Descriptor, fn: Callable[[Descriptor], Descriptor]) -> Descriptor:
    """Rebuild ``d`` bottom-up, replacing every descriptor by ``fn(descriptor)``."""
    if isinstance(d, LocateDevice) and d.parent is not None:
        d = replace(d, parent=map_descriptors(d.parent, fn))
    elif isinstance(d, (RamdiskDevice, FileDevice)) and d.file.device is not None:
        d = replace(d, file=replace(d.file, device=map_descriptors(d.file.device, fn)))
    elif isinstance(d, VhdDevice):
        d = replace(d, inner=map_descriptors(d.inner, fn))
    return fn(d)


def _raw_partitions(raw: bytes) -> list[PartitionId]:
    out = []
    pos = raw.find(_PARTITION_MAGIC)
    while pos >= 0:
        if pos + 0x48 <= len(raw):
            d = _decode_known(raw[pos:pos + 0x48], MAX_NESTING)
            if isinstance(d, PartitionDevice) and d.identity is not None:
                out.append(d.identity)
        pos = raw.find(_PARTITION_MAGIC, pos + 1)
    return out


def rewrite_raw_partitions(raw: bytes, mapping: dict[PartitionId, PartitionId]) -> tuple[bytes, list[tuple[PartitionId, PartitionId]]]:
    """Patch partition descriptors embedded in undecoded bytes whose identity is a key of ``mapping``.

    Only an exact match of the old identity (16-byte header pattern + full identity) is rewritten, so
    unrelated bytes are not touched by accident.
    """
    buf = bytearray(raw)
    changes = []
    pos = buf.find(_PARTITION_MAGIC)
    while pos >= 0:
        if pos + 0x48 <= len(buf):
            d = _decode_known(bytes(buf[pos:pos + 0x48]), MAX_NESTING)
            if isinstance(d, PartitionDevice) and d.identity in mapping:
                old = d.identity
                new = mapping[old]
                buf[pos:pos + 0x48] = encode_descriptor(d.with_identity(new))
                changes.append((old, new))
        pos = buf.find(_PARTITION_MAGIC, pos + 1)
    return bytes(buf), changes
