"""Edit a hive in place: set/delete values, add/delete keys, then save atomically.

Editing rules follow BOOT.md §9.3: data that grows gets a new cell (the old one is freed), data
over 16344 bytes goes to db big-data records on hives 1.4+, value lists and subkey lists are rewritten
as needed (subkey lists sorted by upper-cased name, lh hashes / lf hints recomputed), new keys share
their parent's security cell (reference count +1), and the nk bookkeeping fields (counts, max name
and data lengths, timestamps) are kept as Windows does. Every edit is all-or-nothing in memory: on an
error the hive is restored to its state before the call.

`save` bumps both sequence numbers to the same new value, refreshes the timestamp and checksum, then
writes ``path.tmp``, fsyncs, keeps the previous file as ``path.rescue-bak-YYYYmmddTHHMMSS`` (hard link,
else a copy), renames over ``path`` and fsyncs the directory: a crash leaves the old or the new file.
Dirty hives are refused: writing one would silently discard its transaction logs (a hive replayed
from its logs by `logs.replay` is clean and can be edited).
"""

from __future__ import annotations

import contextlib
import copy
import os
import struct
import time
from pathlib import Path
from typing import Callable, Iterator

from ..io.atomic import write_fsync
from ..errors import FormatError, TargetWriteError, UnsupportedError, UsageError
from ..platform import files
from .alloc import allocate, free
from .c_regf import (BASE_BLOCK_SIZE, BIG_DATA_MIN_MINOR, BIG_DATA_SEGMENT, DB, KEY_COMP_NAME, NK,
                     NO_CELL, SK, VALUE_COMP_NAME, VK, VK_DATA_INLINE)
from .cells import (build_leaf, build_ri, encode_name, name_bytes_len, parse_db, parse_offset_array,
                    parse_subkey_list, sort_key, upcase)
from .hive import MAX_KEY_DEPTH, Hive, Key
from .values import DecodedValue, encode_value

_U32 = struct.Struct("<I")

# Leaf lists are split into an ri index above this many entries so that no list cell grows past
# ~8 KiB (Windows splits its leaves at a similar size; one huge cell would force a huge hbin).
MAX_LEAF_ENTRIES = 1012

# Windows' own limits (Microsoft Learn "Registry element size limits").
MAX_KEY_NAME = 255
MAX_VALUE_NAME = 16383

_FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns units


def filetime_now() -> int:
    return time.time_ns() // 100 + _FILETIME_EPOCH


class HiveWriter:
    """In-place editor of a clean `Hive` (keys and values of the hive stay valid across edits)."""

    def __init__(self, hive: Hive, *, clock: Callable[[], int] = filetime_now) -> None:
        """``clock`` gives the FILETIME stamped on keys and the base block (fixed: reproducible bytes)."""
        if hive.read_only or hive.dirty:
            raise UnsupportedError(detail=(
                f"refusing to write hive {hive.name}: it is dirty ({hive.dirty_reason}) and its transaction "
                "logs were not replayed; writing would silently discard them"))
        self.hive = hive
        self.clock = clock

    # --- helpers -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        h = self.hive
        saved = (bytes(h.data), dict(h.allocated), dict(h.free), dict(h.free_end), list(h.bins),
                 copy.copy(h.header))
        try:
            yield
        except BaseException:
            data, h.allocated, h.free, h.free_end, h.bins, h.header = saved
            h.data = bytearray(data)
            h.invalidate()
            raise

    def _key(self, key: Key | str) -> Key:
        if isinstance(key, Key):
            return key
        return self.hive.key(key)

    def _put(self, cell: int, table: dict[str, tuple[int, int]], field: str, value: int) -> None:
        off, width = table[field]
        pos = BASE_BLOCK_SIZE + cell + 4 + off
        self.hive.data[pos:pos + width] = value.to_bytes(width, "little")
        self.hive.invalidate(cell)

    def _put_nk(self, nk_off: int, **fields: int) -> None:
        for name, value in fields.items():
            self._put(nk_off, NK.offsets, name, value)

    def _touch(self, nk_off: int) -> None:
        self._put_nk(nk_off, timestamp=self.clock())

    def _write_cell(self, off: int, data: bytes) -> None:
        start = BASE_BLOCK_SIZE + off + 4
        size = self.hive.allocated[off]
        self.hive.data[start:start + size - 4] = data.ljust(size - 4, b"\0")
        self.hive.invalidate(off)

    # --- value data ---------------------------------------------------------------------------------

    def _store_data(self, data: bytes) -> tuple[int, int]:
        """Place value data; return the vk (data_size, data_offset) fields."""
        if len(data) <= 4:
            return len(data) | VK_DATA_INLINE, _U32.unpack(data.ljust(4, b"\0"))[0]
        if self.hive.header.minor >= BIG_DATA_MIN_MINOR and len(data) > BIG_DATA_SEGMENT:
            segs = [allocate(self.hive, data[i:i + BIG_DATA_SEGMENT]) for i in range(0, len(data), BIG_DATA_SEGMENT)]
            if len(segs) > 0xFFFF:
                raise UsageError(detail=f"value data of {len(data)} bytes is too large for a registry value")
            seg_list = allocate(self.hive, b"".join(_U32.pack(s) for s in segs))
            db = allocate(self.hive, DB.build(signature=b"db", segment_count=len(segs), segment_list=seg_list) + bytes(4))
            return len(data), db
        return len(data), allocate(self.hive, data)

    def _free_data(self, vk_off: int) -> None:
        vk = self.hive.vk(vk_off)
        if vk.data_size & VK_DATA_INLINE or vk.data_size == 0:
            return
        if self.hive.is_big_data(vk):
            db = parse_db(self.hive.cell(vk.data_offset), f"{vk.data_offset:#x}")
            segs = parse_offset_array(self.hive.cell(db.segment_list), db.segment_count, "big data segment list")
            for seg in set(segs):
                free(self.hive, seg)
            free(self.hive, db.segment_list)
        free(self.hive, vk.data_offset)

    # --- values ---------------------------------------------------------------------------------------

    def set_value(self, key: Key | str, name: str, data_type: int, data: bytes | DecodedValue) -> None:
        """Create or replace value ``name`` of ``key`` (raw bytes, or a Python value encoded for the type)."""
        raw = data if isinstance(data, bytes) else encode_value(data_type, data)
        if len(name) > MAX_VALUE_NAME:
            raise UsageError(detail=f"value name of {len(name)} characters is over Windows' {MAX_VALUE_NAME}")
        if not 0 <= data_type <= 0xFFFFFFFF:
            raise UsageError(detail=f"value type {data_type} does not fit 32 bits")
        k = self._key(key)
        with self._transaction():
            existing = k.value(name)
            if existing is not None:
                self._replace_data(existing.offset, data_type, raw)
            else:
                self._add_value(k, name, data_type, raw)
            nk = k.nk
            self._put_nk(k.offset, max_value_data=max(nk.max_value_data, len(raw)))
            self._touch(k.offset)

    def _replace_data(self, vk_off: int, data_type: int, raw: bytes) -> None:
        h = self.hive
        vk = h.vk(vk_off)
        plain = (not vk.data_size & VK_DATA_INLINE and vk.data_size != 0 and not h.is_big_data(vk))
        fits = (plain and len(raw) > 4 and not (h.header.minor >= BIG_DATA_MIN_MINOR and len(raw) > BIG_DATA_SEGMENT)
                and h.allocated.get(vk.data_offset, 0) - 4 >= len(raw))
        if fits:
            # Same cell, overwritten in place (the usual BCD device patch): no layout change at all.
            self._write_cell(vk.data_offset, raw)
            size, off = len(raw), vk.data_offset
        else:
            self._free_data(vk_off)
            size, off = self._store_data(raw)
        self._put(vk_off, VK.offsets, "data_size", size)
        self._put(vk_off, VK.offsets, "data_offset", off)
        self._put(vk_off, VK.offsets, "data_type", data_type)

    def _add_value(self, k: Key, name: str, data_type: int, raw: bytes) -> None:
        h = self.hive
        nk = k.nk
        name_raw, compressed = encode_name(name)
        size, off = self._store_data(raw)
        vk_off = allocate(h, VK.build(signature=b"vk", name_length=len(name_raw), data_size=size, data_offset=off,
                                      data_type=data_type, flags=VALUE_COMP_NAME if compressed else 0) + name_raw)
        offsets = h.value_offsets(nk) + [vk_off]
        blob = b"".join(_U32.pack(o) for o in offsets)
        if nk.value_count and h.allocated[nk.value_list] - 4 >= len(blob):
            self._write_cell(nk.value_list, blob)
            list_off = nk.value_list
        else:
            list_off = allocate(h, blob)
            if nk.value_count:
                free(h, nk.value_list)
        self._put_nk(k.offset, value_count=len(offsets), value_list=list_off,
                     max_value_name=max(nk.max_value_name, name_bytes_len(name)))

    def delete_value(self, key: Key | str, name: str) -> bool:
        """Delete value ``name``; False when it does not exist."""
        k = self._key(key)
        with self._transaction():
            v = k.value(name)
            if v is None:
                return False
            nk = k.nk
            offsets = [o for o in self.hive.value_offsets(nk) if o != v.offset]
            self._free_data(v.offset)
            free(self.hive, v.offset)
            if offsets:
                self._write_cell(nk.value_list, b"".join(_U32.pack(o) for o in offsets))
                self._put_nk(k.offset, value_count=len(offsets))
            else:
                free(self.hive, nk.value_list)
                self._put_nk(k.offset, value_count=0, value_list=NO_CELL)
            self._touch(k.offset)
            return True

    # --- keys -----------------------------------------------------------------------------------------

    def add_key(self, parent: Key | str, name: str) -> Key:
        """Create subkey ``name`` of ``parent`` (an existing one is returned unchanged)."""
        if not name or "\\" in name or len(name) > MAX_KEY_NAME:
            raise UsageError(detail=f"invalid key name {name!r} (1-{MAX_KEY_NAME} characters, no backslash)")
        p = self._key(parent)
        if p.path.count("\\") + 1 >= MAX_KEY_DEPTH:
            raise UsageError(detail=f"key {p.path!r} is already {MAX_KEY_DEPTH} levels deep")
        existing = p.subkey(name)
        if existing is not None:
            return existing
        h = self.hive
        with self._transaction():
            pnk = p.nk
            sk = pnk.security
            refcount = h.sk(sk).refcount
            name_raw, compressed = encode_name(name)
            nk_off = allocate(h, NK.build(
                signature=b"nk", flags=KEY_COMP_NAME if compressed else 0, timestamp=self.clock(), parent=p.offset,
                subkey_list=NO_CELL, volatile_subkey_list=NO_CELL, value_list=NO_CELL, security=sk,
                class_offset=NO_CELL, name_length=len(name_raw)) + name_raw)
            self._put(sk, SK.offsets, "refcount", refcount + 1)
            entries = [(o, h.nk(o).name) for o in h.subkey_offsets(pnk, p.offset)] + [(nk_off, name)]
            self._write_subkeys(p.offset, entries)
            max_name = pnk.max_subkey_name
            low = max(max_name & 0xFFFF, name_bytes_len(name))
            self._put_nk(p.offset, max_subkey_name=(max_name & 0xFFFF0000) | low)
            self._touch(p.offset)
        return Key(h, nk_off, f"{p.path}\\{name}" if p.path else name)

    def ensure_key(self, path: str) -> Key:
        """The key at ``path``, creating missing levels."""
        key = self.hive.root
        for part in (p for p in path.split("\\") if p):
            key = self.add_key(key, part)
        return key

    def delete_key(self, key: Key | str) -> None:
        """Delete a key with all its subkeys and values."""
        k = self._key(key)
        h = self.hive
        if k.offset == h.header.root_cell:
            raise UsageError(detail="the root key cannot be deleted")
        with self._transaction():
            parent_off = k.nk.parent
            pnk = h.nk(parent_off)
            siblings = h.subkey_offsets(pnk, parent_off)
            if k.offset not in siblings:
                raise FormatError(what=f"hive {h.name}", detail=f"key {k.path!r} is not in its parent's subkey list")
            order: list[int] = []
            seen: set[int] = set()
            stack = [k.offset]
            while stack:
                off = stack.pop()
                if off in seen:
                    raise FormatError(what=f"hive {h.name}", detail=f"key cell {off:#x} is reached twice (cycle)")
                seen.add(off)
                order.append(off)
                stack.extend(h.subkey_offsets(h.nk(off), off))
            for off in reversed(order):  # children before parents
                self._free_key_cells(off)
            entries = [(o, h.nk(o).name) for o in siblings if o != k.offset]
            self._write_subkeys(parent_off, entries)
            self._touch(parent_off)

    def _free_key_cells(self, off: int) -> None:
        h = self.hive
        nk = h.nk(off)
        for vk_off in h.value_offsets(nk):
            self._free_data(vk_off)
            free(h, vk_off)
        if nk.value_count:
            free(h, nk.value_list)
        if nk.class_offset != NO_CELL and nk.class_offset in h.allocated:
            free(h, nk.class_offset)
        if nk.subkey_count:
            self._free_lists(nk.subkey_list)
        self._release_sk(nk.security)
        free(h, off)

    def _release_sk(self, sk_off: int) -> None:
        h = self.hive
        sk = h.sk(sk_off)
        if sk.refcount > 1:
            self._put(sk_off, SK.offsets, "refcount", sk.refcount - 1)
            return
        if sk.flink == sk_off:
            raise FormatError(what=f"hive {h.name}", detail=f"last security cell {sk_off:#x} would be freed")
        # Unlink from the ring of sk cells, then free.
        self._put(sk.blink, SK.offsets, "flink", sk.flink)
        self._put(sk.flink, SK.offsets, "blink", sk.blink)
        free(h, sk_off)

    def _free_lists(self, list_off: int) -> None:
        lst = parse_subkey_list(self.hive.cell(list_off), f"{list_off:#x}")
        if lst.kind == "ri":
            for sub in set(lst.offsets):
                free(self.hive, sub)
        free(self.hive, list_off)

    def _write_subkeys(self, nk_off: int, entries: list[tuple[int, str]]) -> None:
        """Replace a key's subkey list by ``entries`` in Windows order (same leaf kind as before)."""
        h = self.hive
        nk = h.nk(nk_off)
        kind = "lh" if h.header.minor >= 5 else "lf"
        if nk.subkey_count:
            lst = parse_subkey_list(h.cell(nk.subkey_list), f"{nk.subkey_list:#x}")
            kind = lst.kind
            if kind == "ri" and lst.offsets:
                kind = parse_subkey_list(h.cell(lst.offsets[0]), f"{lst.offsets[0]:#x}").kind
            self._free_lists(nk.subkey_list)
        entries = sorted(entries, key=lambda e: sort_key(e[1]))
        for a, b in zip(entries, entries[1:]):
            if upcase(a[1]) == upcase(b[1]):
                raise FormatError(what=f"hive {h.name}", detail=f"two subkeys named {a[1]!r}")
        if not entries:
            list_off = NO_CELL
        elif len(entries) <= MAX_LEAF_ENTRIES:
            list_off = allocate(h, build_leaf(kind, entries))
        else:
            leaves = [allocate(h, build_leaf(kind, entries[i:i + MAX_LEAF_ENTRIES]))
                      for i in range(0, len(entries), MAX_LEAF_ENTRIES)]
            list_off = allocate(h, build_ri(leaves))
        self._put_nk(nk_off, subkey_count=len(entries), subkey_list=list_off)

    # --- output ---------------------------------------------------------------------------------------

    def commit(self) -> bytes:
        """Finish the hive image: both sequence numbers bumped to one new value, timestamp, checksum."""
        seq = (max(self.hive.header.seq1, self.hive.header.seq2) + 1) & 0xFFFFFFFF
        self.hive.set_header_fields(seq1=seq, seq2=seq, timestamp=self.clock())
        return bytes(self.hive.data)

    def save(self, path: str | os.PathLike[str], *, backup: bool = True) -> Path | None:
        """Atomically write the hive to ``path``; return the backup of the previous file (if any)."""
        data = self.commit()
        return atomic_replace(Path(path), data, backup=backup)


def atomic_replace(path: Path, data: bytes, *, backup: bool = True) -> Path | None:
    """Write ``path.tmp``, fsync, keep the old file as a timestamped backup, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    bak: Path | None = None
    try:
        write_fsync(tmp, data)
        if backup and path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            bak = path.with_name(f"{path.name}.rescue-bak-{stamp}")
            n = 1
            while bak.exists():
                bak = path.with_name(f"{path.name}.rescue-bak-{stamp}-{n}")
                n += 1
            _preserve(path, bak)
        os.replace(tmp, path)
        files.fsync_dir(str(path.parent))
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TargetWriteError(target=str(path), detail=e.strerror or str(e)) from e
    return bak


def _preserve(src: Path, dst: Path) -> None:
    """Keep ``src`` as ``dst``: a hard link (instant, atomic), else a fsynced copy (FAT has no links)."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    data = src.read_bytes()
    fd = files.open_fd(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
