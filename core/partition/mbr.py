"""MBR (DOS) partition tables: parse sector 0 and the EBR chain, rewrite a table for restore, build one.

Layout (BOOT.md §2): 440 bytes of boot code, the 4-byte disk signature, 2 reserved bytes,
four 16-byte entries at 0x1BE and 0x55AA at 0x1FE. An extended partition (type 0x05/0x0F/0x85) holds a
chain of EBR sectors; in each EBR entry 1 is the logical partition, its start *relative to that EBR*,
and entry 2 links to the next EBR, its start *relative to the extended partition's start*. Linux
numbering: primaries keep their slot number 1-4, logical partitions get 5, 6, ... in chain order.

Everything read from disk is hostile: the chain may loop or be absurdly long, entries may point past the
disk or overlap; all of that is a `FormatError`, nothing else escapes. Writers are pure: they return
``(disk_offset, bytes)`` writes and never touch a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..errors import FormatError, UsageError
from ..io.reader import Reader, read_exact
from .c_mbr import (BOOT_CODE_SIZE, BOOT_SIGNATURE, BOOT_SIGNATURE_OFFSET, EBR_SECTOR, ENTRIES_OFFSET,
                    EXTENDED_TYPES, LINK_TYPE, MAX_EBRS, MAX_LBA, MBR_ENTRY, MBR_SECTOR, Entry, build_entry,
                    decode_entries)
from .model import MetaArea, Partition, PartitionTable


def check_disjoint(items: Iterable[tuple[str, int, int]], what: str) -> None:
    """``items`` are (name, first, end) ranges; any overlap is a `FormatError` naming both."""
    ordered = sorted(items, key=lambda t: (t[1], t[2]))
    for (name_a, _, end_a), (name_b, start_b, _) in zip(ordered, ordered[1:]):
        if start_b < end_a:
            raise FormatError(what=what, detail=f"{name_a} overlaps {name_b}")


# --- parsing -----------------------------------------------------------------------------------------


@dataclass
class Layout:
    """What the MBR and its EBR chain say, in sectors (shared by `parse` and `rewrite_for_disk`)."""

    disk_signature: int
    primaries: list[Entry]
    extended: Entry | None = None
    # (EBR LBA, the EBR's logical entry or None when the EBR carries no partition, link entry or None)
    chain: list[tuple[int, Entry | None, Entry | None]] = field(default_factory=list)


def _check_status(e: Entry, what: str) -> None:
    if e.status not in (0x00, 0x80):
        raise FormatError(what=what, detail=f"entry {e.slot + 1} has status byte 0x{e.status:02x} "
                                            "(only 0x00/0x80 are valid; the Windows MBR refuses to boot)")


def parse_layout(sector0: bytes, read_sector: Callable[[int], bytes], total_sectors: int) -> Layout:
    """Decode sector 0 and walk the EBR chain; validates bounds, loops, overlaps (all in sectors)."""
    hdr = MBR_SECTOR.parse(sector0, what="MBR")
    if hdr["boot_signature"] != BOOT_SIGNATURE:
        raise FormatError(what="MBR", detail="no partition table (no 0x55AA signature in sector 0)")
    entries = decode_entries(sector0, "MBR")
    layout = Layout(hdr["disk_signature"], [])
    ranges: list[tuple[str, int, int]] = []
    for e in entries:
        # The Windows MBR code rejects a bad status in any slot, used or not (BOOT.md §2.2).
        _check_status(e, "MBR")
        if not e.used:
            continue
        name = f"partition {e.slot + 1}"
        if e.lba_start == 0:
            raise FormatError(what="MBR", detail=f"{name} starts at LBA 0 (over the MBR itself)")
        if e.lba_start + e.num_sectors > total_sectors:
            raise FormatError(what="MBR", detail=f"{name} (LBA {e.lba_start}+{e.num_sectors}) extends past "
                                                 f"the end of the disk ({total_sectors} sectors)")
        ranges.append((name, e.lba_start, e.lba_start + e.num_sectors))
        if e.type in EXTENDED_TYPES:
            if layout.extended is not None:
                raise FormatError(what="MBR", detail="more than one extended partition")
            layout.extended = e
        else:
            layout.primaries.append(e)
    check_disjoint(ranges, "MBR")
    if layout.extended is not None:
        _walk_chain(layout, layout.extended, read_sector)
    return layout


def _walk_chain(layout: Layout, ext: Entry, read_sector: Callable[[int], bytes]) -> None:
    ext_start, ext_end = ext.lba_start, ext.lba_start + ext.num_sectors
    lba = ext_start
    visited: set[int] = set()
    ranges: list[tuple[str, int, int]] = []
    while True:
        what = f"EBR at LBA {lba}"
        if lba in visited:
            raise FormatError(what=what, detail="EBR chain loops back to an EBR already read")
        if len(visited) >= MAX_EBRS:
            raise FormatError(what=what, detail=f"EBR chain longer than {MAX_EBRS} (corrupt or hostile)")
        if not ext_start <= lba < ext_end:
            raise FormatError(what=what,
                              detail=f"outside the extended partition (LBA {ext_start}-{ext_end - 1})")
        visited.add(lba)
        sector = read_sector(lba)
        if EBR_SECTOR.parse(sector, what=what)["boot_signature"] != BOOT_SIGNATURE:
            raise FormatError(what=what, detail="no 0x55AA signature")
        data, link, *rest = decode_entries(sector, what)
        if any(e.used for e in rest):
            raise FormatError(what=what, detail="entries 3-4 are in use (unsupported EBR layout)")
        ranges.append((what, lba, lba + 1))
        logical: Entry | None = None
        if data.used:
            _check_status(data, what)
            if data.type in EXTENDED_TYPES:
                raise FormatError(what=what, detail=f"first entry has extended type 0x{data.type:02x}")
            start = lba + data.lba_start
            if data.lba_start == 0 or start + data.num_sectors > ext_end:
                raise FormatError(what=what, detail=f"logical partition LBA {start}+{data.num_sectors} is "
                                                    "not inside the extended partition after its EBR")
            ranges.append((f"logical partition at LBA {start}", start, start + data.num_sectors))
            logical = data
        next_link: Entry | None = None
        if link.used:
            _check_status(link, what)
            if link.type not in EXTENDED_TYPES:
                raise FormatError(what=what,
                                  detail=f"link entry has type 0x{link.type:02x}, not an extended type")
            next_link = link
        layout.chain.append((lba, logical, next_link))
        if next_link is None:
            break
        lba = ext_start + next_link.lba_start
    check_disjoint(ranges, "extended partition")


def parse(reader: Reader, sector_size: int) -> PartitionTable:
    """Parse an MBR-partitioned disk (the caller has ruled out GPT)."""
    total = reader.size // sector_size

    def read_sector(lba: int) -> bytes:
        return read_exact(reader, lba * sector_size, sector_size, f"EBR at LBA {lba}")

    sector0 = read_exact(reader, 0, sector_size, "MBR")
    layout = parse_layout(sector0, read_sector, total)
    return to_table(layout, sector_size, reader.size)


def to_table(layout: Layout, sector_size: int, disk_size: int) -> PartitionTable:
    """The model object for a decoded layout (byte offsets, Linux numbering)."""
    ss = sector_size
    parts = [Partition(number=e.slot + 1, start=e.lba_start * ss, size=e.num_sectors * ss,
                       type_id=f"0x{e.type:02x}", bootable=e.status == 0x80) for e in layout.primaries]
    meta = [MetaArea(0, ss, "mbr")]
    extended = None
    if layout.extended is not None:
        x = layout.extended
        extended = Partition(number=x.slot + 1, start=x.lba_start * ss, size=x.num_sectors * ss,
                             type_id=f"0x{x.type:02x}", bootable=x.status == 0x80)
        number = 5
        for lba, logical, _ in layout.chain:
            meta.append(MetaArea(lba * ss, ss, "ebr"))
            if logical is not None:
                parts.append(Partition(number=number, start=(lba + logical.lba_start) * ss,
                                       size=logical.num_sectors * ss, type_id=f"0x{logical.type:02x}",
                                       bootable=logical.status == 0x80, logical=True))
                number += 1
    return PartitionTable(scheme="mbr", sector_size=ss, disk_size=disk_size,
                          disk_id=f"0x{layout.disk_signature:08x}", partitions=tuple(parts),
                          meta=tuple(meta), extended=extended)


# --- writers -----------------------------------------------------------------------------------------
# Pure functions: they return ``(disk_offset, bytes)`` writes for the caller (restore) to perform.

Writes = list[tuple[int, bytes]]


def _patch_start(raw: bytes, lba_start: int) -> bytes:
    """``raw`` entry with only its start field changed (status, CHS, type, count stay byte-identical)."""
    fields = MBR_ENTRY.parse(raw)
    fields["lba_start"] = lba_start
    return MBR_ENTRY.build(**fields)


def _put_entry(sector: bytearray, slot: int, raw: bytes) -> None:
    off = ENTRIES_OFFSET + slot * MBR_ENTRY.size
    sector[off:off + MBR_ENTRY.size] = raw


def rewrite_for_disk(mbr_sector: bytes, ebrs: dict[int, bytes], sector_size: int, new_disk_size: int,
                     keep: set[int] | None = None) -> Writes:
    """Writes that put the source's MBR table on a disk of ``new_disk_size`` bytes, keeping only ``keep``.

    ``ebrs`` maps each EBR's byte offset to its sector (the "ebr" meta areas of the source). Dropped
    primaries are zeroed in place; the EBR chain is relinked through the kept logical partitions only
    (the first kept one's EBR moves to the extended partition's start, as fdisk does when it deletes
    the first logical); with no logical kept the extended entry goes too. Stale EBR sectors are zeroed.
    Boot code, disk signature and every untouched entry stay byte-identical. Partition positions never
    move; logical partitions are renumbered by Linux (5, 6, ... over the kept ones).
    """
    ss = sector_size
    if len(mbr_sector) != ss:
        raise UsageError(detail=f"MBR sector is {len(mbr_sector)} bytes, sector size is {ss}")
    new_total = new_disk_size // ss
    if new_total < 2:
        raise UsageError(detail=f"target disk of {new_disk_size} bytes is too small for a partition table")

    def read_sector(lba: int) -> bytes:
        data = ebrs.get(lba * ss)
        if data is None:
            raise FormatError(what=f"EBR at LBA {lba}", detail="not among the EBR sectors given")
        return data

    # No disk bound while parsing: dropped partitions may lie beyond the new disk's end.
    layout = parse_layout(mbr_sector, read_sector, MAX_LBA + 1)
    table = to_table(layout, ss, new_disk_size)
    numbers = {p.number for p in table.partitions}
    keep = set(numbers) if keep is None else set(keep)
    if table.extended is not None:
        keep.discard(table.extended.number)  # the container follows its logical partitions
    if keep - numbers:
        raise UsageError(detail=f"no partition {sorted(keep - numbers)} in the source MBR")
    for p in table.partitions:
        if p.number in keep and p.end > new_total * ss:
            raise UsageError(detail=f"partition {p.number} ends at byte {p.end}, beyond the target disk "
                                    f"({new_disk_size} bytes)")

    sector0 = bytearray(mbr_sector)
    zero_entry = bytes(MBR_ENTRY.size)
    for e in layout.primaries:
        if e.slot + 1 not in keep:
            _put_entry(sector0, e.slot, zero_entry)
    writes: Writes = []
    x = layout.extended
    if x is not None:
        writes += _relink(layout, x, sector0, read_sector, keep, ss, new_total)
    writes.append((0, bytes(sector0)))
    return sorted(writes)


def _relink(layout: Layout, x: Entry, sector0: bytearray, read_sector: Callable[[int], bytes],
            keep: set[int], ss: int, new_total: int) -> Writes:
    """EBR writes for the kept logical partitions (and the extended entry update in ``sector0``)."""
    ext_start = x.lba_start
    kept: list[tuple[int, Entry]] = []
    number = 5
    for lba, logical, _ in layout.chain:
        if logical is not None:
            if number in keep:
                kept.append((lba, logical))
            number += 1
    writes: Writes = []
    if not kept:
        _put_entry(sector0, x.slot, bytes(MBR_ENTRY.size))
        new_lbas: list[int] = []
    else:
        end = min(ext_start + x.num_sectors, new_total)
        if end != ext_start + x.num_sectors:  # the container must end on the (smaller) disk
            _put_entry(sector0, x.slot, build_entry(x.status, x.type, ext_start, end - ext_start))
        new_lbas = [ext_start] + [lba for lba, _ in kept[1:]]
        for i, ((old_lba, logical), new_lba) in enumerate(zip(kept, new_lbas)):
            sector = bytearray(read_sector(old_lba))
            if new_lba != old_lba:
                _put_entry(sector, 0, _patch_start(logical.raw, old_lba + logical.lba_start - new_lba))
            old_link = decode_entries(sector, f"EBR at LBA {old_lba}")[1]
            link = bytes(MBR_ENTRY.size)
            if i + 1 < len(kept):
                nxt_old, nxt = kept[i + 1]
                rel = new_lbas[i + 1] - ext_start
                size = nxt_old + nxt.lba_start + nxt.num_sectors - new_lbas[i + 1]
                if old_link.used and (old_link.lba_start, old_link.num_sectors) == (rel, size):
                    link = old_link.raw
                else:
                    link_type = old_link.type if old_link.used else LINK_TYPE
                    link = build_entry(0, link_type, rel, size, chs_base=ext_start)
            _put_entry(sector, 1, link)
            writes.append((new_lba * ss, bytes(sector)))
    for lba, _, _ in layout.chain:
        if lba not in new_lbas and lba < new_total:
            writes.append((lba * ss, bytes(ss)))  # stale EBR in now-free space: no parser may find it
    return writes


def _disk_signature(disk_id: str | int) -> int:
    try:
        value = disk_id if isinstance(disk_id, int) else int(disk_id, 16)
    except ValueError:
        raise UsageError(detail=f"MBR disk id {disk_id!r} is not a hex number like 0x1234abcd") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(detail=f"MBR disk id {disk_id!r} does not fit 32 bits")
    return value


def _type_byte(p: Partition) -> int:
    try:
        value = int(p.type_id, 16)
    except ValueError:
        raise UsageError(detail=f"partition {p.number}: MBR type {p.type_id!r} is not a hex byte") from None
    if not 0 < value <= 0xFF:
        raise UsageError(detail=f"partition {p.number}: MBR type {p.type_id!r} is not a byte 0x01-0xff")
    return value


def _lbas(p: Partition, ss: int, total: int) -> tuple[int, int]:
    if p.start % ss or p.size % ss or p.size <= 0 or p.start < ss:
        raise UsageError(detail=f"partition {p.number}: start {p.start} / size {p.size} are not whole "
                                f"sectors of {ss} bytes after sector 0")
    start, count = p.start // ss, p.size // ss
    if start + count > total or start > MAX_LBA or count > MAX_LBA:
        raise UsageError(detail=f"partition {p.number} (LBA {start}+{count}) does not fit the disk "
                                f"({total} sectors) or the MBR's 32-bit fields")
    return start, count


def build(partitions: Iterable[Partition], disk_size: int, sector_size: int, disk_id: str | int,
          boot_code: bytes = b"", extended: Partition | None = None) -> Writes:
    """Writes for a fresh MBR table (sector 0 plus one EBR per logical partition).

    Primaries (``logical=False``) take slots 1-4 by number; logical partitions must be numbered 5, 6,
    ... and need ``extended`` (the container, its number a free slot). The first EBR sits at the
    container's start, each further one in the first sector after the previous logical partition (the
    start of the gap, as sfdisk places them). ``boot_code`` (at most 440 bytes) is kept verbatim.
    """
    ss = sector_size
    total = disk_size // ss
    if len(boot_code) > BOOT_CODE_SIZE:
        raise UsageError(detail=f"boot code is {len(boot_code)} bytes, the MBR holds {BOOT_CODE_SIZE}")
    parts = list(partitions)
    prims = [p for p in parts if not p.logical]
    logicals = sorted((p for p in parts if p.logical), key=lambda p: p.number)
    slots = [p.number for p in prims] + ([extended.number] if extended is not None else [])
    if len(set(slots)) != len(slots) or any(not 1 <= n <= 4 for n in slots):
        raise UsageError(detail=f"MBR primary/extended numbers {slots} must be distinct slots 1-4")
    if [p.number for p in logicals] != list(range(5, 5 + len(logicals))):
        raise UsageError(detail="logical partitions must be numbered 5, 6, ... without gaps")
    if logicals and extended is None:
        raise UsageError(detail="logical partitions need an extended partition")
    sector0 = bytearray(ss)
    sector0[:len(boot_code)] = boot_code
    head = MBR_SECTOR.build(disk_signature=_disk_signature(disk_id), boot_signature=BOOT_SIGNATURE)
    sector0[BOOT_CODE_SIZE:ENTRIES_OFFSET] = head[BOOT_CODE_SIZE:ENTRIES_OFFSET]
    sector0[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] = head[BOOT_SIGNATURE_OFFSET:]
    ranges = []
    for p in prims + ([extended] if extended is not None else []):
        start, count = _lbas(p, ss, total)
        type_ = _type_byte(p)
        if (p is extended) != (type_ in EXTENDED_TYPES):
            raise UsageError(detail=f"partition {p.number}: type {p.type_id} does not match its role")
        _put_entry(sector0, p.number - 1, build_entry(0x80 if p.bootable else 0, type_, start, count))
        ranges.append((f"partition {p.number}", start, start + count))
    writes: Writes = [(0, bytes(sector0))]
    if extended is not None:
        writes += _build_chain(logicals, extended, ss, total, ranges)
    try:
        check_disjoint(ranges, "new MBR")
    except FormatError as e:
        raise UsageError(detail=e.message) from None
    return writes


def _build_chain(logicals: list[Partition], extended: Partition, ss: int, total: int,
                 ranges: list[tuple[str, int, int]]) -> Writes:
    ext_start, ext_count = _lbas(extended, ss, total)
    spans = [_lbas(p, ss, total) for p in logicals]
    ebr_lbas = [ext_start] + [start + count for start, count in spans[:-1]]
    inner: list[tuple[str, int, int]] = []
    writes: Writes = []
    for i, (p, (start, count), ebr) in enumerate(zip(logicals, spans, ebr_lbas)):
        type_ = _type_byte(p)
        if type_ in EXTENDED_TYPES or not ext_start <= ebr < start or start + count > ext_start + ext_count:
            raise UsageError(detail=f"logical partition {p.number} needs a free sector for its EBR before "
                                    "it, inside the extended partition, and a non-extended type")
        inner += [(f"EBR of partition {p.number}", ebr, ebr + 1),
                  (f"partition {p.number}", start, start + count)]
        sector = bytearray(ss)
        _put_entry(sector, 0, build_entry(0x80 if p.bootable else 0, type_, start - ebr, count, chs_base=ebr))
        if i + 1 < len(logicals):
            nxt_ebr, (nxt_start, nxt_count) = ebr_lbas[i + 1], spans[i + 1]
            _put_entry(sector, 1, build_entry(0, LINK_TYPE, nxt_ebr - ext_start,
                                              nxt_start + nxt_count - nxt_ebr, chs_base=ext_start))
        sector[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] = BOOT_SIGNATURE.to_bytes(2, "little")
        writes.append((ebr * ss, bytes(sector)))
    if not logicals:  # an empty extended partition still starts with an (empty) EBR
        sector = bytearray(ss)
        sector[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] = BOOT_SIGNATURE.to_bytes(2, "little")
        writes.append((ext_start * ss, bytes(sector)))
    try:
        check_disjoint(inner, "new extended partition")
    except FormatError as e:
        raise UsageError(detail=e.message) from None
    return writes
