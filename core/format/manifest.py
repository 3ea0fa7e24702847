"""The manifest: the one file whose durable presence commits an image (FORMAT.md "Manifest file").

Layout: header | key slot (encrypted images) | table area (version 2) | summary (clear JSON) | body |
tail digest. The summary lets `list` work without the password; the body holds everything else
(source identity, partition table, volumes, the chunk table, and in version 2 the index of the table
area's blocks), zstd-compressed and, for encrypted images, sealed with AES-256-GCM whose associated
data is header || key slot || summary, so none of them can be altered without the password. The
tail digest covers every byte but the table area, whose blocks the body pins one by one: a reader
checks the manifest without reading tables that grow with the disk, and each block when it uses it.

`ManifestWriter` writes a new (version-2) manifest as the backup runs: table blocks go into the
``.partial`` file as they fill, the rest at `commit`, which makes it durable and renames it.
Version 1 (tables whole in the body, no table area) is still read.
"""

from __future__ import annotations

import json
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

import blake3
import zstandard

from ..crypto.keys import ImageKeys, KeyWrap
from ..errors import FormatError, IncompleteImage, IntegrityError, NewerFormat, PasswordRequired
from ..io.atomic import fsync_dir, os_error, pwrite_all
from ..platform import files
from .c_image import (ENC_AES256GCM, ENC_NONE, FORMAT_VERSION, KDF_ARGON2ID, KDF_NONE, KNOWN_MANDATORY_FEATURES,
                      MANIFEST_MAGIC, NONCE_MANIFEST, OLDEST_VERSION, ChunkEntry, ExtentEntry, KeySlot,
                      ManifestHeader, TableBlock, UnitEntry)
from .image_meta import ImageMeta
from .keyslot import make_keyslot, open_keyslot
from .tables import (EXTENTS, UNITS, BlockTable, MemoryTable, Table, TableWriter, check_extent_rows,
                     check_unit_rows)
from .volume import VolumeInfo

# Caps, checked before any allocation. The summary is a few hundred bytes; 1 MiB is generous. The
# body of version 2 holds the chunk table (52 bytes per 4 MiB stored) and the block index (64 bytes
# per 4096 table rows): ~15 MiB for a 1 TiB image. Version 1 put the whole tables there (~200 MiB of
# tables before compression for 16 TiB). 1 GiB bounds a hostile manifest's decompression bomb while
# leaving room for any real disk.
MAX_SUMMARY = 1 << 20
MAX_BODY_RAW = 1 << 30
TAIL = 32


@dataclass
class Manifest:
    """An image's manifest in memory: metadata, the packed chunk table, and its two tables (whole in
    memory for version 1, read block by block from the file for version 2)."""

    image_id: str
    image_uuid: bytes
    encrypted: bool
    summary: dict[str, Any]
    meta: ImageMeta
    chunks: bytes = b""
    extents: Table = field(default_factory=lambda: MemoryTable(EXTENTS, b""))
    units: Table = field(default_factory=lambda: MemoryTable(UNITS, b""))
    digest: bytes = b""  # BLAKE3 of the file but its table area: what children pin
    keys: ImageKeys | None = field(default=None, repr=False)
    version: int = FORMAT_VERSION
    path: str = ""
    tables_area: tuple[int, int] = (0, 0)  # (offset, length) in the file
    file: BinaryIO | None = field(default=None, repr=False)  # version 2: open while the tables are in use

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    @property
    def chunk_count(self) -> int:
        return len(self.chunks) // ChunkEntry.size

    @property
    def is_delta(self) -> bool:
        """Version 2: the extent map and unit table hold this image's own changes over its parent's
        (FORMAT.md "Chains"); version 1 maps the whole disk in every image."""
        return self.version >= 2

    def chunk(self, number: int) -> dict[str, Any]:
        if not 0 <= number < self.chunk_count:
            raise IntegrityError(detail=f"image {self.image_id}: chunk {number} is not in its chunk table")
        return ChunkEntry.parse(self.chunks, number * ChunkEntry.size)

    def raw_length(self, number: int) -> int | None:
        if not 0 <= number < self.chunk_count:
            return None
        return int.from_bytes(self.chunks[number * ChunkEntry.size + 16:number * ChunkEntry.size + 20], "little")

    def volumes(self) -> list[VolumeInfo]:
        return list(self.meta.volumes)


def _header(image_uuid: bytes, encrypted: bool, summary_len: int, body_len: int, tables_len: int) -> bytes:
    pre = ManifestHeader.build(magic=MANIFEST_MAGIC, version=FORMAT_VERSION, header_size=ManifestHeader.size,
                               image_uuid=image_uuid, encryption=ENC_AES256GCM if encrypted else ENC_NONE,
                               kdf=KDF_ARGON2ID if encrypted else KDF_NONE,
                               keyslot_length=KeySlot.size if encrypted else 0,
                               summary_length=summary_len, body_length=body_len, tables_length=tables_len)[:96]
    return pre + blake3.blake3(pre).digest()


def _sections(image_uuid: bytes, encrypted: bool, keys: ImageKeys | None, wrap: KeyWrap | None,
              summary_json: dict[str, Any], meta_json: dict[str, Any], tables: bytes,
              tables_len: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(header, key slot, summary, body) of a version-2 manifest whose body tables are ``tables``
    (chunk table and block indexes) and whose table area is ``tables_len`` bytes."""
    summary = json.dumps(summary_json, sort_keys=True).encode()
    meta = json.dumps(meta_json, sort_keys=True).encode()
    plain = len(meta).to_bytes(4, "little") + meta + tables
    if len(summary) > MAX_SUMMARY or len(plain) > MAX_BODY_RAW:
        raise FormatError(what="manifest", detail="too large")
    body = zstandard.ZstdCompressor(level=3).compress(plain)
    if not encrypted:
        return _header(image_uuid, False, len(summary), len(body), tables_len), b"", summary, body
    if keys is None or wrap is None:
        raise ValueError("encrypted manifest needs its keys and a key wrap")
    head = _header(image_uuid, True, len(summary), len(body) + 16, tables_len)
    keyslot = make_keyslot(keys, wrap, head)
    return head, keyslot, summary, keys.seal(NONCE_MANIFEST, 0, body, head + keyslot + summary)


class ManifestWriter:
    """A new manifest being written: ``tables`` streams the table area into ``ID.manifest.partial``;
    `commit` appends summary and body, writes header and key slot in front, then fsync, rename,
    fsync of the folder (FORMAT.md "Write ordering", step 4). `abort` removes the partial file."""

    def __init__(self, folder: str, image_id: str, image_uuid: bytes, keys: ImageKeys, encrypted: bool) -> None:
        self.folder = folder
        self.name = f"{image_id}.manifest"
        self.final = os.path.join(folder, self.name)
        self.partial = self.final + ".partial"
        self.image_uuid = image_uuid
        self.keys = keys
        self.encrypted = encrypted
        self.start = ManifestHeader.size + (KeySlot.size if encrypted else 0)
        try:
            self.fd = files.open_fd(self.partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | files.CLOEXEC, 0o644)
        except OSError as e:
            raise os_error(e, folder, f"creating {self.name}") from e
        self.tables = TableWriter(self.fd, self.start, keys, image_uuid, encrypted,
                                  lambda e: os_error(e, folder, f"writing {self.name}"))

    def commit(self, summary: dict[str, Any], meta_json: dict[str, Any], chunks: bytes,
               wrap: KeyWrap | None) -> bytes:
        """Make the manifest durable under its final name; returns its digest."""
        tables_len = self.tables.finish()  # (its errors are reported as ours; the caller aborts)
        try:
            body_tables = chunks + bytes(self.tables.index[EXTENTS]) + bytes(self.tables.index[UNITS])
            head, keyslot, summary_b, body = _sections(self.image_uuid, self.encrypted, self.keys, wrap, summary,
                                                       meta_json, body_tables, tables_len)
            digest = blake3.blake3(head + keyslot + summary_b + body).digest()
            pwrite_all(self.fd, head + keyslot, 0)
            pwrite_all(self.fd, summary_b + body + digest, self.start + tables_len)
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            files.rename(self.partial, self.final)
        except OSError as e:
            self.abort()
            raise os_error(e, self.folder, f"writing {self.name}") from e
        try:
            fsync_dir(self.folder)
        except OSError as e:
            # Not durable means not written (as `write_durable`): the caller undoes the image.
            try:
                os.unlink(self.final)
            except OSError:
                pass
            raise os_error(e, self.folder, f"writing {self.name}") from e
        return digest

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.partial)
        except OSError:
            pass


def encode_json(m: Manifest, meta_json: dict[str, Any], wrap: KeyWrap | None) -> bytes:
    """The bytes of ``m``'s manifest file with other metadata (tests write hostile ones with it): its
    table area copied as it is, its body rebuilt. ``m`` must be a version-2 manifest read from a file."""
    offset, length = m.tables_area
    with open(m.path, "rb") as f:
        area = files.pread(f.fileno(), length, offset) if length else b""
    index = b""
    for table in (m.extents, m.units):
        if isinstance(table, BlockTable):
            index += b"".join(TableBlock.codec.pack(*e) for e in table.entries)
    head, keyslot, summary, body = _sections(m.image_uuid, m.encrypted, m.keys, wrap, m.summary, meta_json,
                                             m.chunks + index, length)
    digest = blake3.blake3(head + keyslot + summary + body).digest()
    m.digest = digest
    return head + keyslot + area + summary + body + digest


@dataclass
class ManifestFile:
    """A manifest file checked for structure, before the password is needed. ``raw`` holds every
    byte of it but the table area (which is read block by block when used)."""

    image_id: str
    path: str
    raw: bytes
    header: dict[str, Any]
    keyslot: bytes
    summary_raw: bytes
    body: bytes
    digest: bytes
    tables_area: tuple[int, int] = (0, 0)

    @property
    def encrypted(self) -> bool:
        return bool(self.header["encryption"] == ENC_AES256GCM)

    @property
    def version(self) -> int:
        return int(self.header["version"])

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
            head = files.pread(f.fileno(), ManifestHeader.size, 0)
            h = _check_header(head, size, name)
            ks, sl, bl, tl = h["keyslot_length"], h["summary_length"], h["body_length"], h["tables_length"]
            p = ManifestHeader.size
            keyslot = files.pread(f.fileno(), ks, p) if ks else b""
            rest = files.pread(f.fileno(), sl + bl + TAIL, p + ks + tl)
    except FileNotFoundError:
        raise IncompleteImage(image=image_id, detail="no manifest (the backup did not finish)") from None
    except OSError as e:
        raise IntegrityError(detail=f"{name}: cannot read: {e.strerror}") from None
    if len(keyslot) != ks or len(rest) != sl + bl + TAIL:
        raise IntegrityError(detail=f"{name}: changed while it was read")
    raw = head + keyslot + rest
    digest = blake3.blake3(raw[:-TAIL]).digest()
    if digest != raw[-TAIL:]:
        raise IntegrityError(detail=f"{name}: damaged (digest mismatch)")
    p = ManifestHeader.size + ks
    return ManifestFile(image_id, path, raw, h, keyslot, raw[p:p + sl], raw[p + sl:p + sl + bl], digest,
                        (p, tl))


def tail_digest(data: bytes) -> bytes:
    """The tail digest the manifest file ``data`` should end with: BLAKE3 of every byte before the
    tail but the table area (for tools and tests that edit a manifest)."""
    h = ManifestHeader.parse(data, what="manifest")
    start = ManifestHeader.size + h["keyslot_length"]
    return blake3.blake3(data[:start] + data[start + h["tables_length"]:-TAIL]).digest()


def _check_header(head: bytes, size: int, name: str) -> dict[str, Any]:
    if size < ManifestHeader.size + TAIL:
        raise IntegrityError(detail=f"{name}: truncated ({size} bytes)")
    h = ManifestHeader.parse(head, what=name)
    if h["magic"] != MANIFEST_MAGIC:
        raise IntegrityError(detail=f"{name}: not a manifest (bad magic)")
    # The digest first: it covers version and features, so a flipped bit there is damage, not a newer
    # format (every version keeps magic, version, features and this digest where version 1 has them).
    if blake3.blake3(head[:96]).digest() != h["header_digest"]:
        raise IntegrityError(detail=f"{name}: header damaged (digest mismatch)")
    if h["version"] > FORMAT_VERSION or h["mandatory_features"] & ~KNOWN_MANDATORY_FEATURES:
        raise NewerFormat(what=name, detail=f"format version {h['version']}, features 0x{h['mandatory_features']:x}")
    if h["version"] < OLDEST_VERSION:
        raise IntegrityError(detail=f"{name}: format version {h['version']} does not exist")
    ks, sl, bl, tl = h["keyslot_length"], h["summary_length"], h["body_length"], h["tables_length"]
    if h["encryption"] not in (ENC_NONE, ENC_AES256GCM) or ks != (KeySlot.size if h["encryption"] else 0):
        raise IntegrityError(detail=f"{name}: unknown encryption {h['encryption']} or bad key slot length {ks}")
    if h["version"] == 1 and tl:
        raise IntegrityError(detail=f"{name}: a version-1 manifest has no table area")
    if sl > MAX_SUMMARY or bl > MAX_BODY_RAW or ManifestHeader.size + ks + tl + sl + bl + TAIL != size:
        raise IntegrityError(detail=f"{name}: section lengths do not add up to the file size {size}"
                                    " (truncated or extended)")
    return h


def open_manifest(mf: ManifestFile, password: Callable[[], bytes | None]) -> Manifest:
    """Authenticate/decrypt the body and decode it. ``password`` is asked only for encrypted images."""
    name = os.path.basename(mf.path)
    keys = ImageKeys(None)
    body: bytes | memoryview = mf.body
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
    if meta.format != mf.version:
        raise IntegrityError(detail=f"{name}: metadata says format {meta.format}, the header {mf.version}")
    tables = plain[4 + mlen:]
    m = Manifest(mf.image_id, mf.header["image_uuid"], mf.encrypted, mf.summary, meta, digest=mf.digest, keys=keys,
                 version=mf.version, path=mf.path, tables_area=mf.tables_area)
    a = meta.chunk_count * ChunkEntry.size
    if mf.version == 1:
        b = a + meta.extent_count * ExtentEntry.size
        if len(tables) != b + meta.unit_count * UnitEntry.size:
            raise IntegrityError(detail=f"{name}: chunk/extent/unit tables have the wrong size")
        m.chunks = tables[:a]
        m.extents, m.units = MemoryTable(EXTENTS, tables[a:b]), MemoryTable(UNITS, tables[b:])
        return m
    b = a + (meta.extent_blocks or 0) * TableBlock.size
    if len(tables) != b + (meta.unit_blocks or 0) * TableBlock.size:
        raise IntegrityError(detail=f"{name}: chunk table and block index have the wrong size")
    m.chunks = tables[:a]
    what = f"image {mf.image_id}"
    try:
        m.file = open(mf.path, "rb")
    except OSError as e:
        raise IntegrityError(detail=f"{name}: cannot read: {e.strerror}") from None
    try:
        _open_tables(m, mf, tables[a:b], tables[b:], what)
    except BaseException:
        m.close()
        raise
    return m


def _open_tables(m: Manifest, mf: ManifestFile, ext_index: bytes, unit_index: bytes, what: str) -> None:
    name = os.path.basename(mf.path)
    meta = m.meta
    assert m.file is not None and m.keys is not None  # set by open_manifest
    ext = BlockTable(EXTENTS, m.file, ext_index, _area(mf), m.keys, m.image_uuid, mf.encrypted,
                     lambda rows: check_extent_rows(rows, m.raw_length, what, meta.disk_size, meta.kind != "full"),
                     what)
    units = BlockTable(UNITS, m.file, unit_index, _area(mf), m.keys, m.image_uuid, mf.encrypted,
                       lambda rows: check_unit_rows(rows, what), what)
    if ext.count != meta.extent_count or units.count != meta.unit_count:
        raise IntegrityError(detail=f"{name}: block index does not hold the rows the metadata counts")
    places = sorted((e[2], e[3]) for e in ext.entries + units.entries)
    pos = mf.tables_area[0]
    for offset, stored in places:
        if offset != pos:
            raise IntegrityError(detail=f"{name}: table blocks do not tile the table area (at byte {pos})")
        pos += stored
    if pos != mf.tables_area[0] + mf.tables_area[1]:
        raise IntegrityError(detail=f"{name}: table area holds bytes no block index entry names")
    m.extents, m.units = ext, units


def _area(mf: ManifestFile) -> tuple[int, int]:
    return mf.tables_area[0], mf.tables_area[0] + mf.tables_area[1]


def new_uuid() -> bytes:
    return uuidlib.uuid4().bytes
