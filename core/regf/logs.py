"""Replay a dirty hive's transaction logs in memory, as Windows does at boot, or refuse with the reason.

A hive is dirty when its sequence numbers differ: Windows did not finish writing it and the newer
data is in ``NAME.LOG1``/``NAME.LOG2`` (or a single ``NAME.LOG``). `replay` validates everything before
it builds anything (BOOT.md §9.4): the primary's base block, each log's base block (checksum, its own
sequence numbers, file type), then the log's contents (old format: the ``DIRT`` vector and every dirty
page present; new format: each ``HvLE`` entry's bounds, Marvin32 hashes and sequence continuity, and
which log is older), and finally the recovered hive as a whole (every bin, cell, key and value).
Any inconsistency raises `DirtyHiveError` naming the log and what is wrong; the result is never a
half-recovered hive. Where Windows would go on after damage (a torn last entry, a dummy bin) we
refuse instead: "exactly as Windows would, or not at all".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from ..errors import DirtyHiveError, Error
from .c_regf import (BASE_BLOCK, BASE_BLOCK_FLAGS_OFFSET, BASE_BLOCK_SIZE, DIRTY_PAGE, DIRTY_PAGE_REF,
                     DIRTY_VECTOR_SIGNATURE, FILE_TYPE_LOG_NEW, FILE_TYPE_LOG_OLD, FILE_TYPE_LOG_VERY_OLD,
                     FILE_TYPE_PRIMARY, HBIN_ALIGN, LOG_BASE_BLOCK_SIZE, LOG_ENTRY, LOG_ENTRY_FLAG_MASK,
                     LOG_SECTOR, MARVIN32_LOG_SEED, base_block_checksum)
from .hive import MAX_HIVE_SIZE, SUPPORTED_MINOR, Hive
from .marvin import marvin32

# Fields of the base block that a log's copy must share with the primary's for the log to belong to it.
_SAME_FIELDS = ("major", "minor", "root_cell")


@dataclass(frozen=True)
class LogFile:
    """One log file as found beside the hive: ``data`` None when the file does not exist."""

    name: str                 # as messages call it, e.g. "SYSTEM.LOG1"
    data: bytes | None


@dataclass(frozen=True)
class Recovery:
    """A replayed hive: ``data`` has equal sequence numbers and a right checksum."""

    data: bytes
    log_format: str           # "old" (Vista/7: dirty vector) or "new" (8.1+: HvLE entries)
    sequence: int             # both sequence numbers of the recovered hive
    used: tuple[str, ...]     # names of the logs replayed, in order
    applied: tuple[str, ...]  # one line per log replayed: what it brought
    skipped: tuple[str, ...]  # logs that did not apply, and why (stale, empty)

    @property
    def summary(self) -> str:
        return "; ".join(self.applied + self.skipped)


@dataclass(frozen=True)
class _Log:
    name: str
    data: bytes
    base: dict[str, Any]
    kind: str                 # "old" | "new"


_Fail = Callable[[str], DirtyHiveError]  # makes the error naming the hive, for a reason


class _Replayed(NamedTuple):
    data: bytearray
    sequence: int
    used: list[str]
    applied: list[str]
    skipped: list[str]
    log_format: str


def _serial_lt(a: int, b: int) -> bool:
    """a < b for 32-bit sequence numbers that may wrap (serial number arithmetic)."""
    return a != b and (b - a) & 0xFFFFFFFF < 0x80000000


def needs_replay(primary: bytes) -> bool:
    """True for a primary hive file whose base block says it is dirty (sequence numbers or checksum)."""
    if len(primary) < BASE_BLOCK_SIZE or primary[:4] != b"regf":
        return False  # not a hive at all: the reader says so
    f = BASE_BLOCK.parse(primary, 0)
    return bool(f["seq1"] != f["seq2"] or base_block_checksum(primary) != f["checksum"])


def replay(primary: bytes, logs: list[LogFile], name: str) -> Recovery:
    """Recover the dirty hive ``primary`` from ``logs`` (LOG1, LOG2, LOG as found), or `DirtyHiveError`."""
    def fail(detail: str) -> DirtyHiveError:
        return DirtyHiveError(hive=name, detail=detail)

    base = _primary_base(primary, fail)
    present = {lf.name.rsplit(".", 1)[-1].upper(): lf for lf in logs}
    dual = [present[k] for k in ("LOG1", "LOG2") if k in present and present[k].data is not None]
    if dual:
        # .LOG beside .LOG1/.LOG2 is an artifact of the installation image: Windows ignores it in the
        # dual-logging scheme (BOOT.md §9.4).
        candidates = [present[k] for k in ("LOG1", "LOG2") if k in present]
    elif "LOG" in present and present["LOG"].data is not None:
        candidates = [present["LOG"]]
    else:
        raise fail("no log file (.LOG1, .LOG2 or .LOG) is beside it")
    parsed: list[_Log] = []
    empty: list[str] = []
    for lf in candidates:
        if lf.data is None:
            continue
        log = _classify(lf, fail)
        if log is None:
            empty.append(f"{lf.name} is empty")
        else:
            parsed.append(log)
    kinds = {log.kind for log in parsed}
    if not parsed:
        raise fail("its logs are empty: the newer data Windows did not write is nowhere")
    if len(kinds) > 1:
        raise fail("its logs are of both formats (Vista/7 and 8.1+): which one is current cannot be told")
    if kinds == {"old"}:
        result = _replay_old(primary, base, parsed, fail)
    else:
        missing = [lf.name for lf in candidates if lf.data is None]
        if missing:
            raise fail(f"{missing[0]} is missing: it may hold the newest changes")
        result = _replay_new(primary, base, parsed, fail)
    _validate(result.data, name, fail)
    return Recovery(data=bytes(result.data), log_format=result.log_format, sequence=result.sequence,
                    used=tuple(result.used), applied=tuple(result.applied),
                    skipped=tuple(result.skipped + empty))


def _primary_base(primary: bytes, fail: _Fail) -> dict[str, Any]:
    if len(primary) < BASE_BLOCK_SIZE:
        raise fail(f"the file is {len(primary)} bytes, shorter than its 4096-byte base block")
    if len(primary) > MAX_HIVE_SIZE:
        raise fail(f"{len(primary)} bytes is over the {MAX_HIVE_SIZE}-byte cap")
    f = BASE_BLOCK.parse(primary, 0)
    if f["signature"] != b"regf" or f["file_type"] != FILE_TYPE_PRIMARY:
        raise fail("it is not a primary hive file")
    if base_block_checksum(primary) != f["checksum"]:
        # Windows would rebuild the base block from a log copy and guess which log matches from the
        # first bin's timestamp; nothing here could prove that guess right.
        raise fail("its base block checksum is wrong (a damaged base block is not rebuilt from a log)")
    if f["seq1"] == f["seq2"]:
        raise fail("its sequence numbers are equal: there is nothing to replay")
    if f["major"] != 1 or f["minor"] not in SUPPORTED_MINOR:
        raise fail(f"unsupported version {f['major']}.{f['minor']}")
    return f


def _classify(lf: LogFile, fail: _Fail) -> _Log | None:
    """The log's validated base block and format; None for an empty log (Windows creates them empty)."""
    data = lf.data or b""
    if not data or not any(data[:LOG_BASE_BLOCK_SIZE]):
        return None
    if len(data) < LOG_BASE_BLOCK_SIZE:
        raise fail(f"{lf.name} is {len(data)} bytes, shorter than its 512-byte base block")
    if len(data) > MAX_HIVE_SIZE:
        raise fail(f"{lf.name} is {len(data)} bytes, over the {MAX_HIVE_SIZE}-byte cap")
    f = BASE_BLOCK.parse(data, 0, lf.name)
    if f["signature"] != b"regf":
        raise fail(f"{lf.name} is not a transaction log (magic {f['signature']!r})")
    if base_block_checksum(data) != f["checksum"]:
        raise fail(f"{lf.name}: its base block checksum is wrong")
    if f["seq1"] != f["seq2"]:
        raise fail(f"{lf.name}: its own sequence numbers differ ({f['seq1']} != {f['seq2']}): "
                   "the log was not completely written")
    if f["major"] != 1 or f["minor"] not in SUPPORTED_MINOR:
        raise fail(f"{lf.name}: unsupported version {f['major']}.{f['minor']}")
    hb = f["hbins_size"]
    if hb == 0 or hb % HBIN_ALIGN or BASE_BLOCK_SIZE + hb > MAX_HIVE_SIZE:
        raise fail(f"{lf.name}: hive bins data size {hb:#x} is not a positive multiple of 4096 under the cap")
    if f["file_type"] in (FILE_TYPE_LOG_OLD, FILE_TYPE_LOG_VERY_OLD):
        sig = data[LOG_BASE_BLOCK_SIZE:LOG_BASE_BLOCK_SIZE + 4]
        if sig != DIRTY_VECTOR_SIGNATURE:
            raise fail(f"{lf.name}: no dirty vector (signature {sig!r} instead of "
                       f"{DIRTY_VECTOR_SIGNATURE!r})")
        return _Log(lf.name, data, f, "old")
    if f["file_type"] == FILE_TYPE_LOG_NEW:
        return _Log(lf.name, data, f, "new")
    raise fail(f"{lf.name}: file type {f['file_type']} is not a transaction log")


# --- old format (Vista/7): one log, its dirty pages written over the primary ------------------------------


def _replay_old(primary: bytes, base: dict[str, Any], logs: list[_Log], fail: _Fail) -> _Replayed:
    # The boot loader, which loads SYSTEM, takes the first applicable log, LOG1 before LOG2: applicable
    # means a valid base block whose last-written timestamp is the primary's (BOOT.md §9.4).
    skipped: list[str] = []
    for log in logs:
        why = _old_mismatch(base, log)
        if why:
            skipped.append(f"{log.name} not used: {why}")
            continue
        data, pages = _apply_dirty_vector(primary, log, fail)
        seq = base["seq1"]
        _finish(data, seq=seq, hbins=log.base["hbins_size"], flags=None)
        applied = [f"{log.name}: {pages} dirty pages of 512 bytes"]
        return _Replayed(data, seq, [log.name], applied, skipped, "old")
    raise fail("no log applies to it: " + "; ".join(skipped))


def _old_mismatch(base: dict[str, Any], log: _Log) -> str:
    lb = log.base
    if lb["timestamp"] != base["timestamp"]:
        return "its timestamp is not the primary's (written for another state of the hive)"
    if lb["seq1"] != base["seq1"]:
        return f"its sequence number {lb['seq1']} is not the primary's {base['seq1']}"
    for field in (*_SAME_FIELDS, "hbins_size"):
        if lb[field] != base[field]:
            return f"its base block's {field} {lb[field]:#x} differs from the primary's {base[field]:#x}"
    return ""


def _apply_dirty_vector(primary: bytes, log: _Log, fail: _Fail) -> tuple[bytearray, int]:
    hbins = log.base["hbins_size"]
    nbits = hbins // DIRTY_PAGE
    vec_start = LOG_BASE_BLOCK_SIZE + len(DIRTY_VECTOR_SIGNATURE)
    bitmap = log.data[vec_start:vec_start + nbits // 8]
    if len(bitmap) < nbits // 8:
        raise fail(f"{log.name}: its dirty vector is cut short ({len(bitmap)} of {nbits // 8} bytes)")
    bits = [i for i in range(nbits) if bitmap[i // 8] >> (i % 8) & 1]
    pages_start = -(-(vec_start + len(bitmap)) // LOG_SECTOR) * LOG_SECTOR
    need = pages_start + len(bits) * DIRTY_PAGE
    if need > len(log.data):
        raise fail(f"{log.name}: truncated: {len(bits)} dirty pages need {need} bytes, the file has "
                   f"{len(log.data)}")
    if not bits:
        raise fail(f"{log.name}: its dirty vector marks no page")
    data = _sized(primary, hbins)
    written: set[int] = set()
    for n, bit in enumerate(bits):
        src = pages_start + n * DIRTY_PAGE
        dst = BASE_BLOCK_SIZE + bit * DIRTY_PAGE
        data[dst:dst + DIRTY_PAGE] = log.data[src:src + DIRTY_PAGE]
        written.add(bit)
    # Bytes after the last page are remnants of earlier, longer logs: Windows ignores them.
    _check_covered(primary, hbins, written, log.name, fail)
    return data, len(bits)


# --- new format (8.1+): HvLE entries from both logs, oldest log first ----------------------------------


@dataclass(frozen=True)
class _Entry:
    log: _Log
    sequence: int
    flags: int
    hbins: int
    pages: tuple[tuple[int, int, int], ...]   # (hive-bins offset, size, offset in the log file)


def _replay_new(primary: bytes, base: dict[str, Any], logs: list[_Log], fail: _Fail) -> _Replayed:
    # Both logs are used, the one with the earlier entries first; a log whose entries start before
    # the primary's secondary sequence number is stale and skipped; the second must continue the first
    # at the next sequence number (BOOT.md §9.4).
    ordered = sorted(logs, key=lambda log: log.base["seq1"])
    if len(ordered) == 2:
        a, b = ordered
        if a.base["seq1"] == b.base["seq1"]:
            raise fail(f"{a.name} and {b.name} both start at sequence {a.base['seq1']}")
        if not _serial_lt(a.base["seq1"], b.base["seq1"]):  # the numbers wrapped around 2^32
            ordered.reverse()
    for log in ordered:
        for field in _SAME_FIELDS:
            if log.base[field] != base[field]:
                raise fail(f"{log.name}: its base block's {field} {log.base[field]:#x} differs from the "
                           f"primary's {base[field]:#x}")
    entries: list[_Entry] = []
    used: list[str] = []
    applied: list[str] = []
    skipped: list[str] = []
    last: int | None = None
    for log in ordered:
        start = log.base["seq1"]
        if last is None and _serial_lt(start, base["seq2"]):
            skipped.append(f"{log.name} not used: its entries start at sequence {start}, before the "
                           f"primary's {base['seq2']} (already written to it)")
            continue
        if last is not None and start != (last + 1) & 0xFFFFFFFF:
            raise fail(f"{log.name} starts at sequence {start} but the entries before it end at {last}: "
                       "entries are missing or overlap")
        got = _entries(log, start, fail)
        if not got:
            raise fail(f"{log.name}: no log entry with its starting sequence number {start}")
        entries += got
        last = got[-1].sequence
        used.append(log.name)
        applied.append(f"{log.name}: entries {got[0].sequence}-{last} "
                       f"({sum(len(e.pages) for e in got)} dirty pages)")
    if not entries:
        raise fail("every log is older than the primary: " + "; ".join(skipped))
    data = bytearray(primary)
    written: set[int] = set()
    for e in entries:
        if len(data) < BASE_BLOCK_SIZE + e.hbins:  # the hive grew: Windows grows the file with it
            data += bytes(BASE_BLOCK_SIZE + e.hbins - len(data))
        for off, size, at in e.pages:
            data[BASE_BLOCK_SIZE + off:BASE_BLOCK_SIZE + off + size] = e.log.data[at:at + size]
            written.update(range(off // DIRTY_PAGE, (off + size) // DIRTY_PAGE))
    final = entries[-1]
    _check_covered(primary, final.hbins, written, used[-1], fail)
    flags = int.from_bytes(data[BASE_BLOCK_FLAGS_OFFSET:BASE_BLOCK_FLAGS_OFFSET + 4], "little")
    flags = (flags & ~LOG_ENTRY_FLAG_MASK) | (final.flags & LOG_ENTRY_FLAG_MASK)
    _finish(data, seq=final.sequence, hbins=final.hbins, flags=flags)
    return _Replayed(data, final.sequence, used, applied, skipped, "new")


def _entries(log: _Log, start: int, fail: _Fail) -> list[_Entry]:
    """The log's entries from ``start`` on, each checked; stops at the first that is not the next one."""
    out: list[_Entry] = []
    data = log.data
    off = LOG_BASE_BLOCK_SIZE
    seq = start
    while off + LOG_ENTRY.size <= len(data):
        h = LOG_ENTRY.parse(data, off, log.name)
        if h["signature"] != b"HvLE" or h["sequence"] != seq:
            break  # the end, or remnants of an earlier round of this log (older sequence numbers)
        out.append(_entry(log, off, h, fail))
        off += h["size"]
        seq = (seq + 1) & 0xFFFFFFFF
    # An entry further on that continues the sequence means one in between is damaged: applying only
    # the entries before it would give a half-recovered hive.
    for later in range(off, len(data) - LOG_ENTRY.size + 1, LOG_SECTOR):
        if data[later:later + 4] == b"HvLE":
            h = LOG_ENTRY.parse(data, later, log.name)
            if not _serial_lt(h["sequence"], seq):
                raise fail(f"{log.name}: an entry with sequence {h['sequence']} at offset {later} follows "
                           f"a damaged or missing entry {seq}")
    return out


def _entry(log: _Log, off: int, h: dict[str, Any], fail: _Fail) -> _Entry:
    where = f"{log.name}: log entry {h['sequence']} at offset {off}"
    size = h["size"]
    if size < LOG_ENTRY.size or size % LOG_SECTOR or off + size > len(log.data):
        raise fail(f"{where}: size {size} is not a multiple of 512 inside the {len(log.data)}-byte file "
                   "(torn or damaged write)")
    hbins = h["hbins_size"]
    if hbins == 0 or hbins % HBIN_ALIGN or BASE_BLOCK_SIZE + hbins > MAX_HIVE_SIZE:
        raise fail(f"{where}: hive bins data size {hbins:#x} is not a positive multiple of 4096 under "
                   "the cap")
    body = log.data[off:off + size]
    if marvin32(body[:32], MARVIN32_LOG_SEED) != h["hash2"] or \
            marvin32(body[LOG_ENTRY.size:], MARVIN32_LOG_SEED) != h["hash1"]:
        raise fail(f"{where}: its hashes do not match its contents (torn or damaged write; Windows would "
                   "drop it and everything after it)")
    count = h["page_count"]
    refs_end = LOG_ENTRY.size + count * DIRTY_PAGE_REF.size
    if count == 0 or refs_end > size:
        raise fail(f"{where}: {count} dirty pages do not fit in it")
    pages: list[tuple[int, int, int]] = []
    at = refs_end
    for i in range(count):
        page_off, page_size = DIRTY_PAGE_REF.unpack_from(body, LOG_ENTRY.size + i * DIRTY_PAGE_REF.size)
        if page_size == 0 or page_off % HBIN_ALIGN or page_size % HBIN_ALIGN or page_off + page_size > hbins \
                or at + page_size > size:
            raise fail(f"{where}: dirty page {i} ({page_size} bytes at {page_off:#x}) is out of bounds")
        pages.append((page_off, page_size, off + at))
        at += page_size
    return _Entry(log, h["sequence"], h["flags"], hbins, tuple(pages))


# --- common --------------------------------------------------------------------------------------------


def _sized(primary: bytes, hbins: int) -> bytearray:
    data = bytearray(primary)
    if len(data) < BASE_BLOCK_SIZE + hbins:
        data += bytes(BASE_BLOCK_SIZE + hbins - len(data))
    return data


def _check_covered(primary: bytes, hbins: int, written: set[int], log_name: str, fail: _Fail) -> None:
    """Every page of the hive bins must come from the primary file or from the log."""
    have = max(0, len(primary) - BASE_BLOCK_SIZE) // DIRTY_PAGE
    holes = [p for p in range(have, hbins // DIRTY_PAGE) if p not in written]
    if holes:
        raise fail(f"the primary file is truncated ({len(primary)} bytes) and {log_name} does not hold "
                   f"the missing hive bins from {holes[0] * DIRTY_PAGE:#x}")


def _finish(data: bytearray, *, seq: int, hbins: int, flags: int | None) -> None:
    """The recovered base block: both sequence numbers equal, bins size and flags of the replay, checksum."""
    fields = {"seq1": seq, "seq2": seq, "hbins_size": hbins, "file_type": FILE_TYPE_PRIMARY}
    for fname, value in fields.items():
        pos, width = BASE_BLOCK.offsets[fname]
        data[pos:pos + width] = value.to_bytes(width, "little")
    if flags is not None:
        data[BASE_BLOCK_FLAGS_OFFSET:BASE_BLOCK_FLAGS_OFFSET + 4] = flags.to_bytes(4, "little")
    pos, width = BASE_BLOCK.offsets["checksum"]
    data[pos:pos + width] = base_block_checksum(data).to_bytes(width, "little")


def _validate(data: bytearray, name: str, fail: _Fail) -> None:
    """The recovered hive must read as a whole: every bin and cell, every key, value and data."""
    try:
        hive = Hive(bytes(data), name=name)
        for key in hive.walk():
            _ = key.class_name
            for value in key.values():
                _ = value.data
    except Error as e:
        raise fail(f"the hive replayed from its logs is not consistent ({e.message})") from e
