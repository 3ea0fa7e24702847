"""Read a registry hive (regf): base block, hive bins, cells, keys and values.

The whole hive is held in memory (`Hive.data`, a bytearray) because the writer edits it in place.
Opening validates, in order: magic, version, file type, sizes against the file, the hbin chain and
every cell size (map of allocated and free cells), then the checksum and the sequence numbers. A
*dirty* hive (seq1 != seq2 or a bad checksum: Windows did not finish a write and has newer data in
the .LOG1/.LOG2 files) is refused unless ``allow_dirty=True``, and then it is read-only; `logs.replay`
recovers it from its logs first (``Hive.recovery`` then says what was replayed: core/repair/hivefiles). Every reference followed later (nk, vk, lists, data) must land on the start of an
allocated cell of the right kind; only `core.errors.Error` subclasses escape.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator

from ..errors import FormatError, SourceError, UnsupportedError
from ..io.reader import FdReader, Reader, read_exact
from ..platform import files
from .c_regf import (BASE_BLOCK, BASE_BLOCK_SIZE, BIG_DATA_MIN_MINOR, BIG_DATA_SEGMENT, CELL_ALIGN,
                     HBIN_ALIGN, HBIN_HEADER, MIN_CELL, NO_CELL, VK_DATA_INLINE, base_block_checksum)
from .cells import (NkRecord, SkRecord, VkRecord, parse_db, parse_nk, parse_offset_array, parse_sk,
                    parse_subkey_list, parse_vk, upcase)
from .values import DecodedValue, decode_value

if TYPE_CHECKING:
    from .logs import Recovery

# The hive is held in memory. The biggest real hives (SOFTWARE/COMPONENTS on busy servers) are a few
# hundred MiB; the SYSTEM hive must even fit the boot loader's memory. 1 GiB bounds memory use on
# rescue media against a corrupt or hostile size.
MAX_HIVE_SIZE = 1 << 30

# Windows limits key nesting to 512 levels (Microsoft Learn "Registry element size limits"); deeper
# paths can only come from corruption and would make recursive walks unbounded.
MAX_KEY_DEPTH = 512

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")

SUPPORTED_MINOR = range(2, 7)


@dataclass(frozen=True)
class BaseBlock:
    seq1: int
    seq2: int
    timestamp: int
    major: int
    minor: int
    file_type: int
    root_cell: int
    hbins_size: int
    checksum: int
    checksum_ok: bool


class Hive:
    """An opened hive. Use `Hive.open`, `Hive.from_bytes` or `Hive.from_reader`."""

    def __init__(self, data: bytes | bytearray, *, name: str = "hive", allow_dirty: bool = False) -> None:
        self.name = name
        if len(data) > MAX_HIVE_SIZE:
            raise FormatError(what=f"hive {name}", detail=f"{len(data)} bytes is over the {MAX_HIVE_SIZE}-byte cap")
        self.data = bytearray(data)
        self.header = self._parse_base_block()
        self.bins: list[tuple[int, int]] = []      # (offset, size) of each hbin, in order
        self.allocated: dict[int, int] = {}        # cell offset -> cell size, allocated cells
        self.free: dict[int, int] = {}             # cell offset -> cell size, free cells
        self.free_end: dict[int, int] = {}         # end offset -> start offset of free cells (coalescing)
        self._nk_cache: dict[int, NkRecord] = {}   # parsed nk records; cleared by every edit (invalidate)
        self._walk_bins()
        if self.header.root_cell not in self.allocated:
            raise FormatError(what=f"hive {name}", detail=f"root cell {self.header.root_cell:#x} is not an allocated cell")
        reasons = []
        if self.header.seq1 != self.header.seq2:
            reasons.append(f"sequence numbers {self.header.seq1} != {self.header.seq2}")
        if not self.header.checksum_ok:
            reasons.append("base block checksum is wrong")
        self.dirty_reason = "; ".join(reasons)
        self.dirty = bool(reasons)
        if self.dirty and not allow_dirty:
            raise UnsupportedError(detail=(
                f"hive {name} is dirty ({self.dirty_reason}): Windows did not finish writing it and newer "
                "data may be in its .LOG1/.LOG2 files, which were not replayed, so it is not changed; "
                "let Windows boot once (or repair it in Windows) and try again"))
        self.read_only = self.dirty
        self.recovery: Recovery | None = None  # set when these bytes were replayed from the hive's logs

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, allow_dirty: bool = False) -> Hive:
        p = os.fspath(path)
        try:
            fd = files.open_fd(p, os.O_RDONLY)
        except OSError as e:
            raise SourceError(path=p, detail=e.strerror or str(e)) from e
        try:
            size = os.fstat(fd).st_size
            if size > MAX_HIVE_SIZE:
                raise FormatError(what=f"hive {p}", detail=f"{size} bytes is over the {MAX_HIVE_SIZE}-byte cap")
            return cls(read_exact(FdReader(fd, size, p), 0, size, f"hive {p}"), name=p, allow_dirty=allow_dirty)
        finally:
            os.close(fd)

    @classmethod
    def from_reader(cls, reader: Reader, *, name: str = "hive", allow_dirty: bool = False) -> Hive:
        if reader.size > MAX_HIVE_SIZE:
            raise FormatError(what=f"hive {name}", detail=f"{reader.size} bytes is over the {MAX_HIVE_SIZE}-byte cap")
        return cls(read_exact(reader, 0, reader.size, f"hive {name}"), name=name, allow_dirty=allow_dirty)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "hive", allow_dirty: bool = False) -> Hive:
        return cls(data, name=name, allow_dirty=allow_dirty)

    def _parse_base_block(self) -> BaseBlock:
        what = f"hive {self.name}"
        if len(self.data) < BASE_BLOCK_SIZE:
            raise FormatError(what=what, detail=f"{len(self.data)} bytes is shorter than the 4096-byte base block")
        f = BASE_BLOCK.parse(self.data, 0, what)
        if f["signature"] != b"regf":
            raise FormatError(what=what, detail=f"not a registry hive (magic {f['signature']!r})")
        if f["major"] != 1 or f["minor"] not in SUPPORTED_MINOR:
            raise FormatError(what=what, detail=f"unsupported version {f['major']}.{f['minor']}")
        if f["file_type"] != 0:
            raise FormatError(what=what, detail=f"file type {f['file_type']} is a transaction log, not a primary hive")
        size = f["hbins_size"]
        if size == 0 or size % HBIN_ALIGN:
            raise FormatError(what=what, detail=f"hive bins data size {size:#x} is not a positive multiple of 4096")
        if BASE_BLOCK_SIZE + size > len(self.data):
            raise FormatError(what=what, detail=f"hive bins data size {size:#x} runs past the end of the "
                                                f"{len(self.data)}-byte file (truncated)")
        if f["root_cell"] >= size:
            raise FormatError(what=what, detail=f"root cell {f['root_cell']:#x} is outside the hive bins")
        checksum = base_block_checksum(self.data)
        return BaseBlock(seq1=f["seq1"], seq2=f["seq2"], timestamp=f["timestamp"], major=f["major"],
                         minor=f["minor"], file_type=f["file_type"], root_cell=f["root_cell"],
                         hbins_size=size, checksum=f["checksum"], checksum_ok=checksum == f["checksum"])

    def _walk_bins(self) -> None:
        """Map every hbin and cell; cells must tile each bin exactly, sizes aligned to 8."""
        end = self.header.hbins_size
        off = 0
        while off < end:
            self.walk_bin(off, end)
            off += self.bins[-1][1]

    def walk_bin(self, off: int, end: int) -> None:
        what = f"hive {self.name}: hbin at {off:#x}"
        h = HBIN_HEADER.parse(self.data, BASE_BLOCK_SIZE + off, what)
        if h["signature"] != b"hbin":
            raise FormatError(what=what, detail=f"bad signature {h['signature']!r}")
        if h["offset"] != off:
            raise FormatError(what=what, detail=f"header says offset {h['offset']:#x}")
        size = h["size"]
        if size < HBIN_ALIGN or size % HBIN_ALIGN or off + size > end:
            raise FormatError(what=what, detail=f"bad size {size:#x} (hive bins end at {end:#x})")
        self.bins.append((off, size))
        cell = off + HBIN_HEADER.size
        bin_end = off + size
        data = self.data
        while cell < bin_end:
            raw = _I32.unpack_from(data, BASE_BLOCK_SIZE + cell)[0]
            csize = -raw if raw < 0 else raw
            if csize < MIN_CELL or csize % CELL_ALIGN or cell + csize > bin_end:
                raise FormatError(what=what, detail=f"cell at {cell:#x} has bad size {raw}")
            if raw < 0:
                self.allocated[cell] = csize
            else:
                self.free[cell] = csize
                self.free_end[cell + csize] = cell
            cell += csize

    def set_hbins_size(self, size: int) -> None:
        """Record a new hive-bins data size (the allocator appended an hbin)."""
        _U32.pack_into(self.data, BASE_BLOCK.offsets["hbins_size"][0], size)
        self.header = replace(self.header, hbins_size=size)

    def set_header_fields(self, **fields: int) -> None:
        """Write base-block fields (seq1, seq2, timestamp ...) and refresh the checksum."""
        for name, value in fields.items():
            off, width = BASE_BLOCK.offsets[name]
            self.data[off:off + width] = value.to_bytes(width, "little")
        checksum = base_block_checksum(self.data)
        _U32.pack_into(self.data, BASE_BLOCK.offsets["checksum"][0], checksum)
        self.header = replace(self.header, checksum=checksum, checksum_ok=True,
                              **{k: v for k, v in fields.items() if k in ("seq1", "seq2", "timestamp")})

    # --- cells -----------------------------------------------------------------------------------

    def cell(self, off: int, what: str = "cell") -> bytes:
        """Data of the allocated cell at ``off`` (without its size field)."""
        size = self.allocated.get(off)
        if size is None:
            raise FormatError(what=f"hive {self.name}",
                              detail=f"{what} at {off:#x} is not the start of an allocated cell")
        start = BASE_BLOCK_SIZE + off + 4
        return bytes(self.data[start:start + size - 4])

    @property
    def root(self) -> Key:
        return Key(self, self.header.root_cell, "")

    def find(self, path: str) -> Key | None:
        """The key at a backslash-separated path below the root (case-insensitive), or None."""
        key = self.root
        parts = [p for p in path.split("\\") if p]
        if len(parts) > MAX_KEY_DEPTH:
            return None
        for part in parts:
            sub = key.subkey(part)
            if sub is None:
                return None
            key = sub
        return key

    def key(self, path: str) -> Key:
        """Like `find`, but a missing key is a `FormatError` (the caller expects it to exist)."""
        key = self.find(path)
        if key is None:
            raise FormatError(what=f"hive {self.name}", detail=f"no key {path!r}")
        return key

    def walk(self) -> Iterator[Key]:
        """Every key, depth first; a key reached twice (a cycle or a shared subtree) is a FormatError."""
        seen: set[int] = set()
        stack: list[tuple[Key, int]] = [(self.root, 0)]
        while stack:
            key, depth = stack.pop()
            if key.offset in seen:
                raise FormatError(what=f"hive {self.name}", detail=f"key cell {key.offset:#x} is reached twice (cycle)")
            seen.add(key.offset)
            if depth > MAX_KEY_DEPTH:
                raise FormatError(what=f"hive {self.name}", detail=f"keys nested deeper than {MAX_KEY_DEPTH}")
            yield key
            for sub in reversed(key.subkeys()):
                stack.append((sub, depth + 1))

    # --- records ---------------------------------------------------------------------------------

    def nk(self, off: int) -> NkRecord:
        rec = self._nk_cache.get(off)
        if rec is None:
            rec = self._nk_cache[off] = parse_nk(self.cell(off, "key"), f"{off:#x}")
        return rec

    def invalidate(self, off: int | None = None) -> None:
        """Forget parsed records (of the cell at ``off``, or all): the writer calls this on every change."""
        if off is None:
            self._nk_cache.clear()
        else:
            self._nk_cache.pop(off, None)

    def vk(self, off: int) -> VkRecord:
        return parse_vk(self.cell(off, "value"), f"{off:#x}")

    def sk(self, off: int) -> SkRecord:
        return parse_sk(self.cell(off, "security"), f"{off:#x}")

    def subkey_offsets(self, nk: NkRecord, where: int) -> list[int]:
        """nk offsets of a key's subkeys, in list order; ri lists one level deep only (as Windows)."""
        if nk.subkey_count == 0:
            return []
        lst = parse_subkey_list(self.cell(nk.subkey_list, "subkey list"), f"{nk.subkey_list:#x}")
        if lst.kind == "ri":
            out: list[int] = []
            seen_lists: set[int] = set()
            for sub in lst.offsets:
                if sub in seen_lists:
                    raise FormatError(what=f"hive {self.name}", detail=f"ri list at {nk.subkey_list:#x} repeats {sub:#x} (cycle)")
                seen_lists.add(sub)
                leaf = parse_subkey_list(self.cell(sub, "subkey list"), f"{sub:#x}")
                if leaf.kind == "ri":
                    # Windows never nests index roots; refusing them also rules out list cycles.
                    raise FormatError(what=f"hive {self.name}", detail=f"ri list at {sub:#x} inside another ri list")
                out.extend(leaf.offsets)
        else:
            out = lst.offsets
        if len(out) != nk.subkey_count:
            raise FormatError(what=f"hive {self.name}",
                              detail=f"key at {where:#x} has {nk.subkey_count} subkeys but its lists hold {len(out)}")
        if len(set(out)) != len(out):
            raise FormatError(what=f"hive {self.name}", detail=f"key at {where:#x} lists a subkey twice (cycle)")
        return out

    def value_offsets(self, nk: NkRecord) -> list[int]:
        if nk.value_count == 0:
            return []
        data = self.cell(nk.value_list, "value list")
        out = parse_offset_array(data, nk.value_count, f"hive {self.name}: value list at {nk.value_list:#x}")
        if len(set(out)) != len(out):
            raise FormatError(what=f"hive {self.name}", detail=f"value list at {nk.value_list:#x} lists a value twice")
        return out

    def is_big_data(self, vk: VkRecord) -> bool:
        length = vk.data_size & ~VK_DATA_INLINE
        return (not vk.data_size & VK_DATA_INLINE and self.header.minor >= BIG_DATA_MIN_MINOR
                and length > BIG_DATA_SEGMENT and self.allocated.get(vk.data_offset, 0) >= 12
                and self.cell(vk.data_offset, "value data")[:2] == b"db")

    def value_data(self, vk: VkRecord, where: int) -> bytes:
        """Resolve value data: inline (<= 4 bytes), one cell, or db big data (hive 1.4+, > 16344 bytes)."""
        what = f"hive {self.name}: value at {where:#x}"
        if vk.data_size & VK_DATA_INLINE:
            length = vk.data_size & ~VK_DATA_INLINE
            if length > 4:
                raise FormatError(what=what, detail=f"inline data of {length} bytes (at most 4 fit)")
            return _U32.pack(vk.data_offset)[:length]
        length = vk.data_size
        if length == 0:
            return b""
        if length > self.header.hbins_size:
            raise FormatError(what=what, detail=f"data size {length} is larger than the hive")
        if self.is_big_data(vk):
            db = parse_db(self.cell(vk.data_offset, "big data"), f"{vk.data_offset:#x}")
            segs = parse_offset_array(self.cell(db.segment_list, "big data segment list"), db.segment_count,
                                      f"{what}: segment list")
            if len(set(segs)) != len(segs):
                # Repeated segments would let a tiny file claim up to 1 GiB of data.
                raise FormatError(what=what, detail="big data lists a segment twice")
            out = bytearray()
            for seg in segs:
                if len(out) >= length:
                    break
                chunk = self.cell(seg, "big data segment")[:min(BIG_DATA_SEGMENT, length - len(out))]
                out += chunk
            if len(out) < length:
                raise FormatError(what=what, detail=f"big data holds {len(out)} of {length} bytes")
            return bytes(out)
        data = self.cell(vk.data_offset, "value data")
        if len(data) < length:
            raise FormatError(what=what, detail=f"data size {length} overruns its {len(data)}-byte cell")
        return data[:length]


class Key:
    """A key of a hive (a view on its nk cell; re-read on every access, so edits show at once)."""

    def __init__(self, hive: Hive, offset: int, path: str) -> None:
        self.hive = hive
        self.offset = offset
        self.path = path

    def __repr__(self) -> str:
        shown = self.path or "\\"
        return f"Key({shown!r} @ {self.offset:#x})"

    @property
    def nk(self) -> NkRecord:
        return self.hive.nk(self.offset)

    @property
    def name(self) -> str:
        return self.nk.name

    @property
    def timestamp(self) -> int:
        return self.nk.timestamp

    @property
    def class_name(self) -> str | None:
        nk = self.nk
        if nk.class_offset == NO_CELL or nk.class_length == 0:
            return None
        data = self.hive.cell(nk.class_offset, "class name")
        if nk.class_length > len(data):
            raise FormatError(what=f"hive {self.hive.name}", detail=f"class name of key {self.path!r} overruns its cell")
        return data[:nk.class_length].decode("utf-16-le", errors="surrogatepass")

    def _child_path(self, name: str) -> str:
        return f"{self.path}\\{name}" if self.path else name

    def subkeys(self) -> list[Key]:
        nk = self.nk
        out = []
        for off in self.hive.subkey_offsets(nk, self.offset):
            out.append(Key(self.hive, off, self._child_path(self.hive.nk(off).name)))
        return out

    def subkey(self, name: str) -> Key | None:
        want = upcase(name)
        for sub in self.subkeys():
            if upcase(sub.name) == want:
                return sub
        return None

    def values(self) -> list[Value]:
        return [Value(self, off) for off in self.hive.value_offsets(self.nk)]

    def value(self, name: str) -> Value | None:
        want = upcase(name)
        for v in self.values():
            if upcase(v.name) == want:
                return v
        return None


class Value:
    """A value of a key (view on its vk cell)."""

    def __init__(self, key: Key, offset: int) -> None:
        self.key = key
        self.offset = offset
        self.vk = key.hive.vk(offset)

    def __repr__(self) -> str:
        return f"Value({self.key.path!r}, {self.name!r}, type {self.type})"

    @property
    def name(self) -> str:
        return self.vk.name

    @property
    def type(self) -> int:
        return self.vk.data_type

    @property
    def data(self) -> bytes:
        return self.key.hive.value_data(self.vk, self.offset)

    @property
    def value(self) -> DecodedValue:
        return decode_value(self.vk.data_type, self.data)
