"""Validation of the manifest's JSON metadata before anything uses it.

The body of an unencrypted image is protected against accidents only, so a hostile or buggy writer
can put anything there. Every field the engine reads is checked here for type and range, and volume
names must be exactly the names the image's id implies (a name like ``../../etc/passwd`` must never
reach `open`). Failure is an `IntegrityError` naming the manifest and the field.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import IntegrityError
from .c_image import HASH_UNIT

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
# Extent entries name their image in 16 bits; a restore opens every image of the chain. Longer
# chains than this should be merged (`rescue merge`) long before.
MAX_CHAIN = 1000
# Sizes beyond 2^63 cannot be disk offsets; refusing them keeps arithmetic and struct packing sane.
MAX_OFFSET = (1 << 63) - 1
# A disk has at most 128 GPT entries or a bounded EBR chain; 4096 leaves room and bounds the work.
MAX_PARTITIONS = 4096
# Each volume is at least 8 MiB except the last; 2^20 volumes is far beyond any real image.
MAX_VOLUMES = 1 << 20


def _fail(name: str, field: str) -> IntegrityError:
    return IntegrityError(detail=f"{name}: metadata field {field!r} is malformed")


def _int(value: Any, name: str, field: str, lo: int = 0, hi: int = MAX_OFFSET) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _fail(name, field)
    return value


def _extents(value: Any, name: str, field: str) -> None:
    if not isinstance(value, list):
        raise _fail(name, field)
    for e in value:
        if not isinstance(e, list) or len(e) != 2:
            raise _fail(name, field)
        _int(e[0], name, field)
        _int(e[1], name, field, 1)


def validate(meta: Any, image_id: str, name: str) -> dict[str, Any]:
    """Check every field the engine relies on; return ``meta`` unchanged if it passes."""
    if not isinstance(meta, dict):
        raise _fail(name, "body")
    _int(meta.get("chunk_count"), name, "chunk_count")
    _int(meta.get("extent_count"), name, "extent_count")
    _int(meta.get("unit_count"), name, "unit_count")
    if meta.get("hash_unit") != HASH_UNIT:
        raise _fail(name, "hash_unit")
    if meta.get("kind") not in ("full", "incremental", "differential"):
        raise _fail(name, "kind")
    chain = meta.get("chain", [])
    if not isinstance(chain, list) or len(chain) > MAX_CHAIN or (meta["kind"] == "full") != (not chain):
        raise _fail(name, "chain")
    for i, c in enumerate(chain):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not _ID.match(c["id"]) \
                or not isinstance(c.get("digest"), str) or not _HEX64.match(c["digest"]):
            raise _fail(name, f"chain[{i}]")
    vols = meta.get("volumes")
    if not isinstance(vols, list) or not 1 <= len(vols) <= MAX_VOLUMES:
        raise _fail(name, "volumes")
    for i, v in enumerate(vols):
        if not isinstance(v, dict) or v.get("name") != f"{image_id}.v{i + 1:04d}":
            raise _fail(name, f"volumes[{i}].name")
        _int(v.get("number"), name, f"volumes[{i}].number", i, i)
        _int(v.get("length"), name, f"volumes[{i}].length")
        _int(v.get("records"), name, f"volumes[{i}].records")
        if not isinstance(v.get("trailer_digest"), str) or not _HEX64.match(v["trailer_digest"]):
            raise _fail(name, f"volumes[{i}].trailer_digest")
    _extents(meta.get("zero_extents", []), name, "zero_extents")
    _extents(meta.get("unreadable", []), name, "unreadable")
    src = meta.get("source")
    if not isinstance(src, dict):
        raise _fail(name, "source")
    _int(src.get("size"), name, "source.size")
    if src.get("logical_sector_size", 512) not in (512, 1024, 2048, 4096):
        raise _fail(name, "source.logical_sector_size")
    stats = meta.get("stats")
    if not isinstance(stats, dict):
        raise _fail(name, "stats")
    _int(stats.get("data_bytes"), name, "stats.data_bytes")
    table = meta.get("table")
    if table is not None:
        _table(table, name)
    if not isinstance(meta.get("warnings", []), list):
        raise _fail(name, "warnings")
    return meta


def _table(table: Any, name: str) -> None:
    if not isinstance(table, dict) or table.get("scheme") not in ("mbr", "gpt"):
        raise _fail(name, "table.scheme")
    _int(table.get("disk_size"), name, "table.disk_size")
    _int(table.get("sector_size"), name, "table.sector_size", 512, 4096)
    parts = table.get("partitions")
    if not isinstance(parts, list) or len(parts) > MAX_PARTITIONS:
        raise _fail(name, "table.partitions")
    for i, p in enumerate(parts):
        if not isinstance(p, dict) or not isinstance(p.get("included"), bool):
            raise _fail(name, f"table.partitions[{i}]")
        for f in ("number", "start", "size"):
            _int(p.get(f), name, f"table.partitions[{i}].{f}")
    meta = table.get("meta")
    if not isinstance(meta, list) or len(meta) > MAX_PARTITIONS:
        raise _fail(name, "table.meta")
    roles = []
    for i, m in enumerate(meta):
        if not isinstance(m, dict) or m.get("role") not in ("mbr", "ebr", "gpt-primary", "gpt-backup"):
            raise _fail(name, f"table.meta[{i}]")
        _int(m.get("offset"), name, f"table.meta[{i}].offset")
        # Table areas are a sector up to the GPT entry array (at most 1 MiB + a header sector).
        _int(m.get("length"), name, f"table.meta[{i}].length", 1, (1 << 20) + 4096)
        roles.append(m["role"])
    if roles.count("mbr") != 1 or (table["scheme"] == "gpt" and roles.count("gpt-primary") != 1):
        raise _fail(name, "table.meta")
