"""An image's metadata (the manifest body's JSON object) as one typed object, checked on the way in.

FORMAT.md "Metadata fields" lists every key with its type; `tests/format/test_spec_sync.py` checks
that list against the declarations below. `ImageMeta.from_json` accepts only what these declarations
allow: the body of an unencrypted image is protected against accidents only, so a hostile or buggy
writer can put anything there; types and ranges are checked, volume names must be exactly the names
the image's id implies (a name like ``../../etc/passwd`` must never reach `open`), and failure is a
`FormatError` naming the manifest and the field. `to_json` writes back exactly the JSON that was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError
from ..extents import Extent
from ..partition.model import MetaArea, Partition
from .c_image import FORMAT_VERSION, HASH_UNIT
from .jsonrec import (FLAG, TEXT, Malformed, declare, dump, extents, fields_of, hex_bytes, many, matching,
                      one_of, optional, parse, record, spec, uint)
from .volume import VolumeInfo, volume_name

FORMAT = FORMAT_VERSION
# Extent entries name their image in 16 bits; a restore opens every image of the chain. Longer
# chains than this should be merged (`rescue merge`) long before.
MAX_CHAIN = 1000
# Sizes beyond 2^63 cannot be disk offsets; refusing them keeps arithmetic and struct packing sane.
MAX_OFFSET = (1 << 63) - 1
# A disk has at most 128 GPT entries or a bounded EBR chain; 4096 leaves room and bounds the work.
MAX_PARTITIONS = 4096
# Each volume is at least 8 MiB except the last; 2^20 volumes is far beyond any real image.
MAX_VOLUMES = 1 << 20
# Table areas are a sector up to the GPT entry array (at most 1 MiB + a header sector).
MAX_AREA = (1 << 20) + 4096

IMAGE_ID = r"\d{8}-\d{6}-[0-9a-f]{6}"
HEX64 = r"[0-9a-f]{64}"
U64 = uint()
KINDS = ("full", "incremental", "differential")

declare(Partition, number=uint(0, 1 << 32), start=U64, size=U64, type_id=TEXT, bootable=FLAG,
        guid=optional(TEXT), name=TEXT, attributes=uint(0, (1 << 64) - 1), logical=FLAG)
declare(MetaArea, offset=U64, length=uint(1, MAX_AREA),
        role=one_of("mbr", "ebr", "gpt-primary", "gpt-backup"))
declare(VolumeInfo, number=uint(0, MAX_VOLUMES), name=TEXT, length=U64, records=U64,
        trailer_digest=hex_bytes(32))


@dataclass(frozen=True)
class ChainPin:
    """An image a child refers to, pinned by the digest of its manifest."""

    id: str = field(metadata=spec(matching(IMAGE_ID)))
    digest: str = field(metadata=spec(matching(HEX64)))


@dataclass(frozen=True)
class Settings:
    """The options the image was written with (JSON ``options``)."""

    level: int = field(metadata=spec(U64))
    partitions: str = field(metadata=spec(TEXT))
    split: int | None = field(metadata=spec(optional(U64)))
    sector_by_sector: bool = field(metadata=spec(FLAG))


@dataclass(frozen=True, kw_only=True)
class SourceDisk:
    """The disk that was read; an incremental must find the same one (size, sectors, serial, table)."""

    size: int = field(metadata=spec(U64))
    logical_sector_size: int = field(default=512, metadata=spec(one_of(512, 1024, 2048, 4096), default=512))
    path: str | None = field(default=None, metadata=spec(TEXT, default=None, omit_none=True))
    real_path: str | None = field(default=None, metadata=spec(TEXT, default=None, omit_none=True))
    kind: str | None = field(default=None, metadata=spec(TEXT, default=None, omit_none=True))
    physical_sector_size: int | None = field(default=None, metadata=spec(U64, default=None, omit_none=True))
    model: str | None = field(default=None, metadata=spec(optional(TEXT), default=None))
    serial: str | None = field(default=None, metadata=spec(optional(TEXT), default=None))
    dev: str | None = field(default=None, metadata=spec(TEXT, default=None, omit_none=True))
    backing_file: str | None = field(default=None, metadata=spec(TEXT, default=None, omit_none=True))
    # BLAKE3 of the partition table's own sectors: an incremental refuses a disk whose layout changed.
    table_fingerprint: str | None = field(default=None, metadata=spec(matching(HEX64), default=None,
                                                                      omit_none=True))
    extra: dict[str, Any] = field(default_factory=dict, compare=False, metadata=spec(extra=True))

    @classmethod
    def from_identity(cls, identity: dict[str, Any], table_fingerprint: str) -> SourceDisk:
        """From `core.disk.device.Disk.identity` (keys not declared here are kept as they are)."""
        known = {f.attr for f in fields_of(cls)}
        return cls(table_fingerprint=table_fingerprint, **{k: v for k, v in identity.items() if k in known},
                   extra={k: v for k, v in identity.items() if k not in known})


@dataclass(frozen=True, kw_only=True)
class PartitionEntry:
    """One partition of the source's table, as the table describes it and as the backup found it."""

    partition: Partition = field(metadata=spec(record(Partition), flat=True))
    included: bool = field(metadata=spec(FLAG))  # whether the image holds its data
    role: str = field(metadata=spec(TEXT))
    fs: str | None = field(metadata=spec(optional(TEXT)))
    label: str = field(metadata=spec(TEXT))
    used_bytes: int | None = field(metadata=spec(optional(U64)))

    @property
    def number(self) -> int:
        return self.partition.number

    @property
    def start(self) -> int:
        return self.partition.start

    @property
    def size(self) -> int:
        return self.partition.size


@dataclass(frozen=True, kw_only=True)
class ImageTable:
    """The source's partition table, its partitions and the areas the table itself occupies."""

    scheme: str = field(metadata=spec(one_of("mbr", "gpt")))
    sector_size: int = field(metadata=spec(uint(512, 4096)))
    disk_size: int = field(metadata=spec(U64))
    disk_id: str = field(metadata=spec(TEXT))
    partitions: tuple[PartitionEntry, ...] = field(
        metadata=spec(many(record(PartitionEntry), MAX_PARTITIONS)))
    extended: PartitionEntry | None = field(metadata=spec(optional(record(PartitionEntry)), default=None))
    areas: tuple[MetaArea, ...] = field(metadata=spec(many(record(MetaArea), MAX_PARTITIONS), key="meta"))

    @property
    def included(self) -> list[PartitionEntry]:
        return [p for p in self.partitions if p.included]

    @property
    def has_windows(self) -> bool:
        return any(p.role == "windows" for p in self.partitions)


@dataclass(frozen=True)
class Stats:
    read_bytes: int = field(metadata=spec(U64))
    data_bytes: int = field(metadata=spec(U64))
    stored_bytes: int = field(metadata=spec(U64))
    reused_bytes: int = field(metadata=spec(U64))


@dataclass(frozen=True, kw_only=True)
class ImageMeta:
    """Everything the manifest body says about an image besides its packed tables."""

    format: int = field(default=FORMAT, metadata=spec(U64))
    id: str = field(metadata=spec(matching(IMAGE_ID)))
    kind: str = field(metadata=spec(one_of(*KINDS)))
    parent: str | None = field(default=None, metadata=spec(optional(matching(IMAGE_ID))))
    parent_digest: str | None = field(default=None, metadata=spec(optional(matching(HEX64))))
    chain: tuple[ChainPin, ...] = field(default=(),
                                        metadata=spec(many(record(ChainPin), MAX_CHAIN), default=()))
    time: str = field(metadata=spec(TEXT))
    tool: str = field(metadata=spec(TEXT))
    options: Settings = field(metadata=spec(record(Settings)))
    source: SourceDisk = field(metadata=spec(record(SourceDisk)))
    table: ImageTable | None = field(metadata=spec(optional(record(ImageTable)), default=None))
    zero_extents: tuple[Extent, ...] = field(default=(), metadata=spec(extents(MAX_OFFSET), default=()))
    unreadable: tuple[Extent, ...] = field(default=(), metadata=spec(extents(MAX_OFFSET), default=()))
    stats: Stats = field(metadata=spec(record(Stats)))
    warnings: tuple[str, ...] = field(default=(), metadata=spec(many(TEXT, 1 << 20), default=()))
    merged_from: str | None = field(default=None,
                                    metadata=spec(matching(IMAGE_ID), default=None, omit_none=True))
    # What the image writer fills in when it commits (`core.engine.imagewriter`).
    volumes: tuple[VolumeInfo, ...] = field(default=(),
                                            metadata=spec(many(record(VolumeInfo), MAX_VOLUMES, 1)))
    chunk_count: int = field(default=0, metadata=spec(U64))
    extent_count: int = field(default=0, metadata=spec(U64))
    unit_count: int = field(default=0, metadata=spec(U64))
    # Version 2: the blocks of the table area that hold the extent map and the unit table.
    extent_blocks: int | None = field(default=None, metadata=spec(U64, default=None, omit_none=True))
    unit_blocks: int | None = field(default=None, metadata=spec(U64, default=None, omit_none=True))
    hash_unit: int = field(default=HASH_UNIT, metadata=spec(one_of(HASH_UNIT)))
    # Keys this version does not know, carried over unchanged (a merge keeps them).
    extra: dict[str, Any] = field(default_factory=dict, compare=False, metadata=spec(extra=True))

    @classmethod
    def from_json(cls, value: Any, image_id: str, name: str) -> ImageMeta:
        """Parse and check the metadata of image ``image_id``, read from the manifest ``name``."""
        try:
            meta = parse(cls, value)
            meta._check(image_id)
        except Malformed as e:
            raise FormatError(what=name, detail=f"metadata field {e.path!r} is malformed") from None
        return meta

    def _check(self, image_id: str) -> None:
        """What no single field says: a full image has no chain and others have one; volume i is
        ``ID.v{i+1}``; a table has one MBR area (and a GPT one primary GPT area)."""
        if (self.kind == "full") != (not self.chain):
            raise Malformed("chain")
        for i, v in enumerate(self.volumes):
            if v.name != volume_name(image_id, i):
                raise Malformed(f"volumes[{i}].name")
            if v.number != i:
                raise Malformed(f"volumes[{i}].number")
        t = self.table
        if t is not None:
            roles = [a.role for a in t.areas]
            if roles.count("mbr") != 1 or (t.scheme == "gpt" and roles.count("gpt-primary") != 1):
                raise Malformed("table.meta")

    def to_json(self) -> dict[str, Any]:
        return dump(self)

    @property
    def included(self) -> list[int]:
        """Numbers of the partitions the image holds."""
        return sorted(p.number for p in self.table.partitions if p.included) if self.table else []

    @property
    def disk_size(self) -> int:
        return self.table.disk_size if self.table else self.source.size

    def summary(self, stored_bytes: int, encrypted: bool) -> dict[str, Any]:
        """The manifest's clear summary (FORMAT.md "Summary"): what `list` shows without the password."""
        s = self.source
        return {"id": self.id, "kind": self.kind, "parent": self.parent, "time": self.time,
                "bytes": stored_bytes, "encrypted": encrypted, "used_bytes": self.stats.data_bytes,
                "source": {"path": s.path, "size": s.size, "model": s.model, "serial": s.serial,
                           "scheme": self.table.scheme if self.table else "none"},
                "partitions": self.included}
