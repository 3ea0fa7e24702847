"""Declarations of every fixed-size structure of the image format (version 2; version 1 still read).

These tables are normative together with FORMAT.md; `tests/format/test_spec_sync.py` checks that the
byte tables in FORMAT.md list exactly these fields, offsets and sizes. All integers little-endian.
"""

from __future__ import annotations

from ..structs import Struct

FORMAT_VERSION = 2
# The oldest version this code reads (and restores); it writes only FORMAT_VERSION.
OLDEST_VERSION = 1

VOLUME_MAGIC = b"RSCUEVOL"
RECORD_MAGIC = b"RCHK"
TRAILER_MAGIC = b"RSCUEEND"
MANIFEST_MAGIC = b"RSCUEMAN"

# Feature flags. A reader refuses an image with a mandatory bit it does not know and ignores unknown
# optional bits (after borg). Version 1 defines none; the fields exist so that later versions can add
# features without a format break.
KNOWN_MANDATORY_FEATURES = 0
KNOWN_OPTIONAL_FEATURES = 0

ENC_NONE = 0
ENC_AES256GCM = 1

COMP_STORED = 0
COMP_ZSTD = 1

KDF_NONE = 0
KDF_ARGON2ID = 1

RECORD_CHUNK = 1

# Record type tags for nonces: a data chunk and the manifest body never share a nonce under one key.
NONCE_CHUNK = 1
NONCE_MANIFEST = 2
NONCE_TABLE = 3

# Raw size of one chunk. 4 MiB keeps per-chunk overhead (40-byte header, 16-byte tag, index entry)
# below 0.01 % and lets two compressor threads work on independent chunks; it is also the most a
# reader ever holds per chunk in memory (plus its compressed copy).
CHUNK_SIZE = 4 << 20

VolumeHeader = Struct("volume header", [
    ("magic", "8s"),
    ("version", "H"),
    ("header_size", "H"),
    ("mandatory_features", "I"),
    ("optional_features", "I"),
    ("image_uuid", "16s"),
    ("volume_number", "I"),
    ("encryption", "B"),
    ("compression", "B"),
    ("reserved1", "H"),
    ("chunk_size", "I"),
    ("reserved2", "48s"),
    ("header_digest", "32s"),
])

RecordHeader = Struct("record header", [
    ("magic", "4s"),
    ("type", "B"),
    ("compression", "B"),
    ("flags", "H"),
    ("chunk_number", "Q"),
    ("stored_length", "I"),
    ("raw_length", "I"),
    ("reserved", "12s"),
    ("header_crc32", "I"),
])

VolumeTrailer = Struct("volume trailer", [
    ("magic", "8s"),
    ("volume_number", "I"),
    ("record_count", "I"),
    ("volume_length", "Q"),
    ("final", "B"),
    ("reserved", "7s"),
    ("prev_trailer_digest", "32s"),
    ("trailer_digest", "32s"),
])

ManifestHeader = Struct("manifest header", [
    ("magic", "8s"),
    ("version", "H"),
    ("header_size", "H"),
    ("mandatory_features", "I"),
    ("optional_features", "I"),
    ("image_uuid", "16s"),
    ("encryption", "B"),
    ("kdf", "B"),
    ("reserved1", "H"),
    ("keyslot_length", "I"),
    ("summary_length", "I"),
    ("body_length", "I"),
    ("tables_length", "Q"),
    ("reserved2", "36s"),
    ("header_digest", "32s"),
])

KeySlot = Struct("key slot", [
    ("memory_kib", "I"),
    ("iterations", "I"),
    ("lanes", "I"),
    ("reserved1", "I"),
    ("salt", "32s"),
    ("nonce", "12s"),
    ("wrapped_key", "48s"),
    ("reserved2", "20s"),
])

# Chunk index entry, packed in the manifest body (see FORMAT.md "Chunk table").
ChunkEntry = Struct("chunk entry", [
    ("volume_number", "I"),
    ("record_offset", "Q"),
    ("stored_length", "I"),
    ("raw_length", "I"),
    ("digest", "32s"),
])

# Extent map entry: raw bytes [disk_offset, disk_offset+length) are bytes
# [chunk_offset, chunk_offset+length) of chunk `chunk_number` of the image `image_ref` levels up the
# chain (0 = this image). Version 2 images refer only to their own chunks (0) or mark a hole
# (HOLE_REF): bytes that are not part of the image's disk state, whatever an ancestor held there.
ExtentEntry = Struct("extent entry", [
    ("disk_offset", "Q"),
    ("length", "I"),
    ("chunk_number", "I"),
    ("chunk_offset", "I"),
    ("image_ref", "H"),
    ("reserved", "H"),
])
HOLE_REF = 0xFFFF

# Change-tracking unit: every image records, for each HASH_UNIT-aligned block of the disk that holds
# stored data, a hash of that data and of which bytes of the block are stored. An incremental backup
# compares these with its parent's and stores only the blocks that differ. 16 KiB keeps a small edit
# inside a big file from costing more than a few clusters, while the table stays ~0.15 % of the data.
HASH_UNIT = 16 << 10

UnitEntry = Struct("unit entry", [
    ("unit_index", "Q"),
    ("hash", "16s"),
])
# A version-2 unit entry with this hash says the unit holds no stored bytes any more (it did in an
# ancestor): no XXH3-128 of stored bytes is checked against it.
TOMBSTONE = bytes(16)

# Version 2 keeps the extent map and the unit table of an image in blocks of the manifest's table
# area, each compressed (and sealed) alone and listed in the body by a block index entry, so that a
# reader streams them or fetches one block for a lookup instead of holding a table whose size grows
# with the disk. 4096 rows (96 KiB of extents or units) keep the index ~0.07 % of the rows it lists
# and one decoded block small enough to cache a few per image.
TABLE_BLOCK_ROWS = 4096

TableBlock = Struct("table block", [
    ("first_key", "Q"),
    ("last_key", "Q"),
    ("offset", "Q"),
    ("stored_length", "I"),
    ("rows", "I"),
    ("digest", "32s"),
])

assert VolumeHeader.size == 128 and RecordHeader.size == 40 and VolumeTrailer.size == 96
assert ManifestHeader.size == 128 and KeySlot.size == 128
assert ChunkEntry.size == 52 and ExtentEntry.size == 24 and UnitEntry.size == 24 and TableBlock.size == 64
