"""The manifest: the one file whose durable presence commits an image (FORMAT.md "Manifest file").

Layout: header | key slot (encrypted images) | summary (clear JSON) | body | tail digest.
The summary lets `list` work without the password; the body holds everything else (source identity,
partition table, volumes, the chunk table and the extent map), zstd-compressed and, for encrypted
images, sealed with AES-256-GCM whose associated data is header || key slot || summary, so none of
them can be altered without the password.
"""

from __future__ import annotations

import json
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Callable

import blake3
import zstandard

from ..crypto.keys import ImageKeys, KeyWrap
from ..errors import FormatError, IncompleteImage, IntegrityError, NewerFormat, PasswordRequired
from .c_image import (ENC_AES256GCM, ENC_NONE, FORMAT_VERSION, KDF_ARGON2ID, KDF_NONE, KNOWN_MANDATORY_FEATURES,
                      MANIFEST_MAGIC, NONCE_MANIFEST, ChunkEntry, ExtentEntry, KeySlot, ManifestHeader,
                      UnitEntry)
from .image_meta import ImageMeta
from .keyslot import make_keyslot, open_keyslot
from .volume import VolumeInfo

# Caps, checked before any allocation. The summary is a few hundred bytes; 1 MiB is generous. The
# body of a 16 TiB disk at 4 MiB chunks is ~200 MiB of tables before compression; 1 GiB bounds a
# hostile manifest's decompression bomb while leaving room for any real disk.
MAX_SUMMARY = 1 << 20
MAX_BODY_RAW = 1 << 30
TAIL = 32


@dataclass
class Manifest:
    """An image's manifest in memory. ``chunks``/``extents`` are packed tables (see c_image)."""

    image_id: str
    image_uuid: bytes
    encrypted: bool
    summary: dict[str, Any]
    meta: ImageMeta
    chunks: bytes = b""
    extents: bytes = b""
    units: bytes = b""
    digest: bytes = b""  # BLAKE3 of the file up to the tail: what children pin
    keys: ImageKeys | None = field(default=None, repr=False)

    @property
    def chunk_count(self) -> int:
        return len(self.chunks) // ChunkEntry.size

    @property
    def extent_count(self) -> int:
        return len(self.extents) // ExtentEntry.size

    @property
    def unit_count(self) -> int:
        return len(self.units) // UnitEntry.size

    def chunk(self, number: int) -> dict[str, Any]:
        if not 0 <= number < self.chunk_count:
            raise IntegrityError(detail=f"image {self.image_id}: chunk {number} is not in its chunk table")
        return ChunkEntry.parse(self.chunks, number * ChunkEntry.size)

    def iter_extents(self) -> Any:
        return ExtentEntry.iter_unpack(self.extents)

    def volumes(self) -> list[VolumeInfo]:
        return list(self.meta.volumes)


def encode(m: Manifest, wrap: KeyWrap | None) -> bytes:
    """Serialize; for encrypted images wraps ``m.keys`` with ``wrap``. Sets ``m.digest``."""
    return encode_json(m, m.meta.to_json(), wrap)


def encode_json(m: Manifest, meta_json: dict[str, Any], wrap: KeyWrap | None) -> bytes:
    """`encode` with the metadata given as its JSON object (tests write hostile ones with it)."""
    summary = json.dumps(m.summary, sort_keys=True).encode()
    meta = json.dumps(meta_json, sort_keys=True).encode()
    plain = len(meta).to_bytes(4, "little") + meta + m.chunks + m.extents + m.units
    if len(summary) > MAX_SUMMARY or len(plain) > MAX_BODY_RAW:
        raise FormatError(what="manifest", detail="too large")
    body = zstandard.ZstdCompressor(level=3).compress(plain)
    keyslot = b""
    enc = ENC_AES256GCM if m.encrypted else ENC_NONE

    def header(body_len: int) -> bytes:
        pre = ManifestHeader.build(magic=MANIFEST_MAGIC, version=FORMAT_VERSION, header_size=ManifestHeader.size,
                                   image_uuid=m.image_uuid, encryption=enc,
                                   kdf=KDF_ARGON2ID if m.encrypted else KDF_NONE,
                                   keyslot_length=KeySlot.size if m.encrypted else 0,
                                   summary_length=len(summary), body_length=body_len)[:96]
        return pre + blake3.blake3(pre).digest()

    if m.encrypted:
        if m.keys is None or wrap is None:
            raise ValueError("encrypted manifest needs its keys and a key wrap")
        head = header(len(body) + 16)
        keyslot = make_keyslot(m.keys, wrap, head)
        body = m.keys.seal(NONCE_MANIFEST, 0, body, head + keyslot + summary)
    else:
        head = header(len(body))
    data = head + keyslot + summary + body
    m.digest = blake3.blake3(data).digest()
    return data + m.digest


@dataclass
class ManifestFile:
    """A manifest file checked for structure, before the password is needed."""

    image_id: str
    path: str
    raw: bytes
    header: dict[str, Any]
    keyslot: bytes
    summary_raw: bytes
    body: bytes
    digest: bytes

    @property
    def encrypted(self) -> bool:
        return bool(self.header["encryption"] == ENC_AES256GCM)

    @property
    def summary(self) -> dict[str, Any]:
        try:
            value = json.loads(self.summary_raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise IntegrityError(detail=f"{os.path.basename(self.path)}: summary is not valid JSON") from None
        if not isinstance(value, dict):
            raise IntegrityError(detail=f"{os.path.basename(self.path)}: summary is not an object")
        return value


def read_file(path: str, image_id: str) -> ManifestFile:
    """Read and structurally validate a manifest file (magic, version, sizes, tail digest)."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Bound before reading: header + slot + summary cap + body cap (compressed <= raw cap).
            if size > ManifestHeader.size + KeySlot.size + MAX_SUMMARY + MAX_BODY_RAW + TAIL:
                raise IntegrityError(detail=f"{name}: {size} bytes is larger than any manifest")
            raw = f.read()
    except FileNotFoundError:
        raise IncompleteImage(image=image_id, detail="no manifest (the backup did not finish)") from None
    except OSError as e:
        raise IntegrityError(detail=f"{name}: cannot read: {e.strerror}") from None
    if len(raw) < ManifestHeader.size + TAIL:
        raise IntegrityError(detail=f"{name}: truncated ({len(raw)} bytes)")
    h = ManifestHeader.parse(raw, what=name)
    if h["magic"] != MANIFEST_MAGIC:
        raise IntegrityError(detail=f"{name}: not a manifest (bad magic)")
    # The digest first: it covers version and features, so a flipped bit there is damage, not a newer
    # format (every version keeps magic, version, features and this digest where version 1 has them).
    if blake3.blake3(raw[:96]).digest() != h["header_digest"]:
        raise IntegrityError(detail=f"{name}: header damaged (digest mismatch)")
    if h["version"] > FORMAT_VERSION or h["mandatory_features"] & ~KNOWN_MANDATORY_FEATURES:
        raise NewerFormat(what=name, detail=f"format version {h['version']}, features 0x{h['mandatory_features']:x}")
    ks, sl, bl = h["keyslot_length"], h["summary_length"], h["body_length"]
    if h["encryption"] not in (ENC_NONE, ENC_AES256GCM) or ks != (KeySlot.size if h["encryption"] else 0):
        raise IntegrityError(detail=f"{name}: unknown encryption {h['encryption']} or bad key slot length {ks}")
    if sl > MAX_SUMMARY or bl > MAX_BODY_RAW or ManifestHeader.size + ks + sl + bl + TAIL != len(raw):
        raise IntegrityError(detail=f"{name}: section lengths do not add up to the file size {len(raw)}"
                                    " (truncated or extended)")
    digest = blake3.blake3(raw[:-TAIL]).digest()
    if digest != raw[-TAIL:]:
        raise IntegrityError(detail=f"{name}: damaged (digest mismatch)")
    p = ManifestHeader.size
    return ManifestFile(image_id, path, raw, h, raw[p:p + ks], raw[p + ks:p + ks + sl],
                        raw[p + ks + sl:p + ks + sl + bl], digest)


def open_manifest(mf: ManifestFile, password: Callable[[], bytes | None]) -> Manifest:
    """Authenticate/decrypt the body and decode it. ``password`` is asked only for encrypted images."""
    name = os.path.basename(mf.path)
    keys = ImageKeys(None)
    body = mf.body
    if mf.encrypted:
        pw = password()
        if pw is None:
            raise PasswordRequired(image=mf.image_id)
        head = mf.raw[:ManifestHeader.size]
        keys = open_keyslot(mf.keyslot, pw, head, mf.image_id)
        body = keys.open(NONCE_MANIFEST, 0, body, head + mf.keyslot + mf.summary_raw, f"{name} body")
    try:
        plain = zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_BODY_RAW)
    except zstandard.ZstdError as e:
        raise IntegrityError(detail=f"{name}: body does not decompress ({e})") from None
    if len(plain) < 4:
        raise IntegrityError(detail=f"{name}: body truncated")
    mlen = int.from_bytes(plain[:4], "little")
    if 4 + mlen > len(plain):
        raise IntegrityError(detail=f"{name}: body metadata length {mlen} exceeds the body")
    try:
        meta = json.loads(plain[4:4 + mlen])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IntegrityError(detail=f"{name}: body metadata is not valid JSON") from None
    try:
        meta = ImageMeta.from_json(meta, mf.image_id, name)
    except FormatError as e:
        raise IntegrityError(detail=e.message) from None
    n_chunks, n_extents, n_units = meta.chunk_count, meta.extent_count, meta.unit_count
    tables = plain[4 + mlen:]
    a = n_chunks * ChunkEntry.size
    b = a + n_extents * ExtentEntry.size
    if len(tables) != b + n_units * UnitEntry.size:
        raise IntegrityError(detail=f"{name}: chunk/extent/unit tables have the wrong size")
    return Manifest(mf.image_id, mf.header["image_uuid"], mf.encrypted, mf.summary, meta,
                    tables[:a], tables[a:b], tables[b:], mf.digest, keys)


def new_uuid() -> bytes:
    return uuidlib.uuid4().bytes
