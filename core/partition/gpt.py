"""GPT partition tables: validate and parse (primary, falling back to the backup), rewrite, build.

A GPT disk has a protective MBR in LBA 0, the primary header in LBA 1 followed by the entry array, and
a backup entry array and header at the end of the disk (BOOT.md §3). Reading checks, in order:
signature, revision, header size, header CRC, self LBA, entry-array geometry and caps, LBA ranges,
then the entry-array CRC; only then are entries used. A bad primary with a good backup is a warning,
both bad is a `FormatError`. Writers are pure and return ``(disk_offset, bytes)`` writes.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import BackupGptWarning, FormatError, UsageError
from ..io.reader import Reader, read_exact
from .c_gpt import (CRC_FIELD, DEFAULT_ENTRIES, ENTRY_SIZE, GPT_ENTRY, GPT_HEADER, HEADER_SIZE,
                    MAX_ENTRY_ARRAY, NAME_UNITS, REVISION, SIGNATURE, guid_bytes, guid_str, valid_entry_size)
from .c_mbr import (BOOT_CODE_SIZE, BOOT_SIGNATURE, GPT_PROTECTIVE_TYPE, MAX_LBA, MBR_SECTOR, build_entry,
                    decode_entries)
from .mbr import check_disjoint
from .model import MetaArea, MetaRole, Partition, PartitionTable

Writes = list[tuple[int, bytes]]


@dataclass(frozen=True)
class Copy:
    """One validated copy (primary or backup) of the header with its entry array."""

    lba: int
    header: dict[str, Any]
    sector: bytes
    entries: bytes


def entry_sectors(header: dict[str, Any], sector_size: int) -> int:
    """Sectors the entry array occupies (rounded up)."""
    return int(-(-header["num_entries"] * header["entry_size"] // sector_size))


def header_crc(header_bytes: bytes) -> int:
    """CRC32 of the header with its own CRC field zeroed (zlib's CRC is the UEFI/Linux efi_crc32)."""
    off, size = CRC_FIELD
    return zlib.crc32(header_bytes[:off] + bytes(size) + header_bytes[off + size:])


def check_geometry(h: dict[str, Any], sector_size: int, what: str) -> None:
    """Signature, revision, header size and entry-array caps (what any use of a header needs first)."""
    if h["signature"] != SIGNATURE:
        raise FormatError(what=what, detail="no 'EFI PART' signature")
    if h["revision"] >> 16 != REVISION >> 16:
        raise FormatError(what=what, detail=f"unsupported revision 0x{h['revision']:08x}")
    if not HEADER_SIZE <= h["header_size"] <= sector_size:
        raise FormatError(what=what,
                          detail=f"header size {h['header_size']} not in {HEADER_SIZE}..{sector_size}")
    if not valid_entry_size(h["entry_size"]):
        raise FormatError(what=what, detail=f"entry size {h['entry_size']} is not 128 x 2^n")
    if h["num_entries"] * h["entry_size"] > MAX_ENTRY_ARRAY:
        raise FormatError(what=what, detail=f"entry array of {h['num_entries']} x {h['entry_size']} bytes "
                                            f"exceeds the {MAX_ENTRY_ARRAY} byte cap")


def check_header(sector: bytes, lba: int, total: int, sector_size: int) -> dict[str, Any]:
    """Validate the header in ``sector`` (read from ``lba`` of a ``total``-sector disk)."""
    what = f"GPT header at LBA {lba}"
    h = GPT_HEADER.parse(sector, what=what)
    check_geometry(h, sector_size, what)
    if header_crc(sector[:h["header_size"]]) != h["header_crc32"]:
        raise FormatError(what=what, detail="header CRC32 mismatch")
    if h["my_lba"] != lba:
        raise FormatError(what=what, detail=f"says it is at LBA {h['my_lba']}")
    first, last = h["first_usable_lba"], h["last_usable_lba"]
    if not first <= last < total:
        raise FormatError(what=what,
                          detail=f"usable LBAs {first}-{last} are not on the disk ({total} sectors)")
    e0 = h["entries_lba"]
    e1 = e0 + entry_sectors(h, sector_size)
    # The usable LBAs must leave room for LBA 0 (protective MBR), both headers and this entry array.
    headers_inside = first < 2 or first <= lba <= last or first <= h["alternate_lba"] <= last
    if e0 < 1 or e1 > total or e0 <= lba < e1 or (e0 <= last and e1 > first) or headers_inside:
        raise FormatError(what=what, detail=f"headers (LBA {lba}, {h['alternate_lba']}) or entry array "
                                            f"(LBA {e0}-{e1 - 1}) overlap the usable LBAs {first}-{last} "
                                            "or lie off the disk")
    return h


def load_copy(reader: Reader, lba: int, total: int, sector_size: int) -> Copy:
    """Read and validate the header at ``lba`` and its entry array (size capped before the read)."""
    sector = read_exact(reader, lba * sector_size, sector_size, f"GPT header at LBA {lba}")
    h = check_header(sector, lba, total, sector_size)
    entries = read_exact(reader, h["entries_lba"] * sector_size, h["num_entries"] * h["entry_size"],
                         f"GPT entry array at LBA {h['entries_lba']}")
    if zlib.crc32(entries) != h["entries_crc32"]:
        raise FormatError(what=f"GPT entry array at LBA {h['entries_lba']}", detail="CRC32 mismatch")
    return Copy(lba, h, sector, entries)


def _name(raw: bytes, number: int, warnings: list[str]) -> str:
    for k in range(0, len(raw), 2):
        if raw[k:k + 2] == b"\0\0":
            raw = raw[:k]
            break
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError:
        warnings.append(f"GPT partition {number}: name is not valid UTF-16; undecodable units replaced")
        return raw.decode("utf-16-le", errors="replace")


def decode_partitions(copy: Copy, sector_size: int, warnings: list[str]) -> list[Partition]:
    """Used entries as model objects (number = index + 1); ranges and overlaps checked."""
    h = copy.header
    parts: list[Partition] = []
    ranges = []
    for i in range(h["num_entries"]):
        number = i + 1
        f = GPT_ENTRY.parse(copy.entries, i * h["entry_size"], what=f"GPT entry {number}")
        if f["type_guid"] == bytes(16):
            continue
        first, last = f["first_lba"], f["last_lba"]
        if not h["first_usable_lba"] <= first <= last <= h["last_usable_lba"]:
            raise FormatError(what=f"GPT partition {number}",
                              detail=f"LBAs {first}-{last} outside the usable LBAs "
                                     f"{h['first_usable_lba']}-{h['last_usable_lba']}")
        ranges.append((f"partition {number}", first, last + 1))
        parts.append(Partition(number=number, start=first * sector_size,
                               size=(last - first + 1) * sector_size, type_id=guid_str(f["type_guid"]),
                               guid=guid_str(f["unique_guid"]),
                               name=_name(f["name"], number, warnings), attributes=f["attributes"]))
    check_disjoint(ranges, "GPT")
    return parts


def _areas(spans: list[tuple[int, int]], role: MetaRole, ss: int) -> list[MetaArea]:
    """Meta areas for (first LBA, sector count) spans, contiguous ones merged, empty ones dropped."""
    out: list[MetaArea] = []
    for lba, count in sorted(s for s in spans if s[1] > 0):
        if out and out[-1].offset + out[-1].length == lba * ss:
            out[-1] = MetaArea(out[-1].offset, out[-1].length + count * ss, role)
        else:
            out.append(MetaArea(lba * ss, count * ss, role))
    return out


def _sector_size_hint(reader: Reader, sector_size: int) -> str:
    for other in (512, 4096):
        if other != sector_size and reader.read(other, len(SIGNATURE)) == SIGNATURE:
            return f" (a GPT header is at byte {other}: the logical sector size is probably {other})"
    return ""


def parse(reader: Reader, sector_size: int, sector0: bytes) -> PartitionTable:
    """Parse a GPT disk whose (protective) MBR ``sector0`` has a type 0xEE entry."""
    ss = sector_size
    total = reader.size // ss
    if total < 3:
        raise FormatError(what="GPT", detail=f"disk of {total} sectors is too small for a GPT")
    warnings: list[str] = []
    if sum(1 for e in decode_entries(sector0, "protective MBR") if e.used) > 1:
        warnings.append("hybrid MBR: the protective MBR lists other partitions besides the 0xEE entry")
    errors: list[str] = []
    primary = backup = None
    try:
        primary = load_copy(reader, 1, total, ss)
    except FormatError as e:
        errors.append(f"primary: {e.message}")
    backup_lba = total - 1
    if primary is not None and 1 < primary.header["alternate_lba"] < total:
        backup_lba = primary.header["alternate_lba"]
    try:
        backup = load_copy(reader, backup_lba, total, ss)
    except FormatError as e:
        errors.append(f"backup: {e.message}")
    used = primary if primary is not None else backup
    if used is None:
        raise FormatError(what="GPT", detail="primary and backup both invalid: " + "; ".join(errors)
                          + _sector_size_hint(reader, ss))
    if primary is None:
        warnings.append(BackupGptWarning(detail=errors[0], lba=backup_lba))
    elif backup is None:
        warnings.append(f"backup GPT damaged ({errors[0]}); it is rewritten on restore")
    else:
        if backup_lba != total - 1:
            warnings.append(f"backup GPT header at LBA {backup_lba}, not at the last LBA {total - 1} "
                            "(disk enlarged after partitioning?)")
        ph, bh = primary.header, backup.header
        if primary.entries != backup.entries or any(ph[k] != bh[k] for k in (
                "disk_guid", "first_usable_lba", "last_usable_lba", "num_entries", "entry_size")):
            warnings.append("primary and backup GPT differ; using the primary")
    h = used.header
    parts = decode_partitions(used, ss, warnings)
    n = entry_sectors(h, ss)
    if primary is not None:
        primary_spans = [(1, 1), (h["entries_lba"], n)]
    else:  # where a primary belongs: LBA 1 and the array at LBA 2, if that is clear of the usable area
        primary_spans = [(1, 1)] + ([(2, n)] if 2 + n <= h["first_usable_lba"] else [])
    if backup is not None:
        backup_spans = [(backup.header["entries_lba"], entry_sectors(backup.header, ss)), (backup_lba, 1)]
    else:  # where the backup belongs: the array right before the last LBA, if clear of the usable area
        backup_spans = [(total - 1 - n, n), (total - 1, 1)] if total - 1 - n > h["last_usable_lba"] else []
    meta = [MetaArea(0, ss, "mbr"), *_areas(primary_spans, "gpt-primary", ss),
            *_areas(backup_spans, "gpt-backup", ss)]
    return PartitionTable(scheme="gpt", sector_size=ss, disk_size=reader.size,
                          disk_id=guid_str(h["disk_guid"]), partitions=tuple(parts), meta=tuple(meta),
                          warnings=tuple(warnings))


# --- writers -----------------------------------------------------------------------------------------


def _header_sector(h: dict[str, Any], extra: bytes, ss: int, **changes: int) -> bytes:
    fields = dict(h, **changes, header_crc32=0)
    body = GPT_HEADER.build(**fields) + extra
    fields["header_crc32"] = zlib.crc32(body)
    return GPT_HEADER.build(**fields) + extra + bytes(ss - len(body))


def rewrite_for_disk(primary_header: bytes, entries: bytes, sector_size: int, new_disk_size: int,
                     keep: set[int] | None = None) -> Writes:
    """Writes for the primary header (LBA 1), both entry arrays and the backup header on the new disk.

    ``primary_header`` is the source's header sector (a backup header is accepted too), ``entries`` its
    entry array. AlternateLBA, LastUsableLBA and the backup's PartitionEntryLBA follow the new size;
    both CRCs are recomputed. With ``keep`` (partition numbers) every other entry is zeroed. The
    protective MBR is separate (`build_protective_mbr`). Partitions never move; one that would end past
    the new last usable LBA is refused. The target must have the source's logical sector size (every
    LBA would change otherwise, BOOT.md §11).
    """
    ss = sector_size
    h = GPT_HEADER.parse(primary_header, what="source GPT header")
    check_geometry(h, ss, "source GPT header")
    hsize = h["header_size"]
    if len(primary_header) < hsize or header_crc(primary_header[:hsize]) != h["header_crc32"]:
        raise FormatError(what="source GPT header", detail="header CRC32 mismatch")
    size = h["num_entries"] * h["entry_size"]
    array = bytearray(entries[:size])
    if len(array) != size or zlib.crc32(array) != h["entries_crc32"]:
        raise FormatError(what="source GPT entry array", detail="truncated or CRC32 mismatch")
    n = entry_sectors(h, ss)
    last = new_disk_size // ss - 1
    primary_lba = h["entries_lba"] if h["my_lba"] == 1 else 2
    backup_lba = last - n
    last_usable = backup_lba - 1
    if primary_lba < 2 or primary_lba + n > h["first_usable_lba"] or h["first_usable_lba"] > last_usable:
        raise UsageError(detail=f"target disk of {new_disk_size} bytes is too small for this GPT")
    numbers = set()
    for i in range(h["num_entries"]):
        off = i * h["entry_size"]
        f = GPT_ENTRY.parse(bytes(array[off:off + GPT_ENTRY.size]))
        if f["type_guid"] == bytes(16):
            continue
        numbers.add(i + 1)
        if keep is not None and i + 1 not in keep:
            array[off:off + h["entry_size"]] = bytes(h["entry_size"])
        elif f["last_lba"] > last_usable:
            raise UsageError(detail=f"partition {i + 1} ends at LBA {f['last_lba']}, past the target disk's "
                                    f"last usable LBA {last_usable}")
    if keep is not None and keep - numbers:
        raise UsageError(detail=f"no partition {sorted(keep - numbers)} in the source GPT")
    crc = zlib.crc32(array)
    extra = bytes(primary_header[HEADER_SIZE:h["header_size"]])
    common = dict(last_usable_lba=last_usable, entries_crc32=crc)
    writes: Writes = [
        (ss, _header_sector(h, extra, ss, my_lba=1, alternate_lba=last, entries_lba=primary_lba, **common)),
        (last * ss, _header_sector(h, extra, ss, my_lba=last, alternate_lba=1, entries_lba=backup_lba,
                                   **common)),
    ]
    if n:
        padded = bytes(array) + bytes(n * ss - size)
        writes += [(primary_lba * ss, padded), (backup_lba * ss, padded)]
    return sorted(writes)


def build_protective_mbr(disk_size: int, sector_size: int, boot_code: bytes = b"",
                         disk_signature: int = 0) -> bytes:
    """LBA 0 of a GPT disk: one 0xEE entry from LBA 1 to the end (capped at 2^32-1 sectors), 0x55AA."""
    if len(boot_code) > BOOT_CODE_SIZE:
        raise UsageError(detail=f"boot code is {len(boot_code)} bytes, the MBR holds {BOOT_CODE_SIZE}")
    count = min(disk_size // sector_size - 1, MAX_LBA)
    if count < 1:
        raise UsageError(detail=f"disk of {disk_size} bytes is too small for a GPT")
    entries = build_entry(0, GPT_PROTECTIVE_TYPE, 1, count) + bytes(48)
    sector = MBR_SECTOR.build(boot_code=boot_code.ljust(BOOT_CODE_SIZE, b"\0"), disk_signature=disk_signature,
                              entries=entries, boot_signature=BOOT_SIGNATURE)
    return sector + bytes(sector_size - len(sector))


def build(partitions: Iterable[Partition], disk_size: int, sector_size: int, disk_id: str | None = None,
          num_entries: int = DEFAULT_ENTRIES, boot_code: bytes = b"") -> Writes:
    """Writes for a fresh GPT (protective MBR, both headers and arrays) holding ``partitions``.

    Entries go to index ``number - 1``; a partition without ``guid`` (or a missing ``disk_id``) gets a
    random GUID, as every partitioning tool does, because UEFI requires unique GUIDs.
    """
    ss = sector_size
    size = num_entries * ENTRY_SIZE
    if not 0 < size <= MAX_ENTRY_ARRAY:  # same cap as reading, so what we write we can read back
        raise UsageError(detail=f"{num_entries} GPT entries is outside 1..{MAX_ENTRY_ARRAY // ENTRY_SIZE}")
    n = -(-size // ss)
    last = disk_size // ss - 1
    first_usable, last_usable = 2 + n, last - n - 1
    array = bytearray(size)
    ranges = []
    for p in partitions:
        what = f"partition {p.number}"
        slot = slice((p.number - 1) * ENTRY_SIZE, p.number * ENTRY_SIZE)
        if not 1 <= p.number <= num_entries or array[slot] != bytes(ENTRY_SIZE):
            raise UsageError(detail=f"{what}: number not in 1..{num_entries} or used twice")
        if p.start % ss or p.size % ss or p.size <= 0:
            raise UsageError(detail=f"{what}: start {p.start} / size {p.size} are not whole "
                                    f"{ss}-byte sectors")
        first, end = p.start // ss, p.end // ss
        if not first_usable <= first < end <= last_usable + 1:
            raise UsageError(detail=f"{what}: LBAs {first}-{end - 1} outside the usable "
                                    f"{first_usable}-{last_usable}")
        name = p.name.encode("utf-16-le", errors="surrogatepass")
        if len(name) > NAME_UNITS * 2 or not 0 <= p.attributes < 1 << 64:
            raise UsageError(detail=f"{what}: name longer than {NAME_UNITS} UTF-16 units "
                                    "or attributes > 64 bits")
        ranges.append((what, first, end))
        array[slot] = GPT_ENTRY.build(
            type_guid=guid_bytes(p.type_id, f"{what} type"),
            unique_guid=guid_bytes(p.guid, f"{what} GUID") if p.guid else uuid.uuid4().bytes_le,
            first_lba=first, last_lba=end - 1, attributes=p.attributes, name=name)
    try:
        check_disjoint(ranges, "new GPT")
    except FormatError as e:
        raise UsageError(detail=e.message) from None
    header = GPT_HEADER.build(
        signature=SIGNATURE, revision=REVISION, header_size=HEADER_SIZE, my_lba=1, alternate_lba=last,
        first_usable_lba=first_usable, last_usable_lba=last_usable, entries_lba=2, num_entries=num_entries,
        entry_size=ENTRY_SIZE, entries_crc32=zlib.crc32(array),
        disk_guid=guid_bytes(disk_id, "disk id") if disk_id else uuid.uuid4().bytes_le)
    header = header[:CRC_FIELD[0]] + zlib.crc32(header).to_bytes(4, "little") + header[CRC_FIELD[0] + 4:]
    return [(0, build_protective_mbr(disk_size, ss, boot_code))] + rewrite_for_disk(
        header + bytes(ss - len(header)), bytes(array), ss, disk_size)
