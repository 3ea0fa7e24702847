"""Fuzz the regf reader and writer (R-32): only core.errors.Error escapes, cycles are caught, each case fast.

Mutations start from real hives: the base block, hbin headers, cell size fields (sign, zero, huge),
arbitrary bytes, subkey list entries pointed at other keys (cycles), big-data records, truncation.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import Error
from core.regf.c_regf import BASE_BLOCK_SIZE, base_block_checksum
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from tests.regf.regf_helpers import bcd_fixture

FUZZ = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=None)
def base_hive() -> bytes:
    return bcd_fixture("pybcd_BCDTest").read_bytes()


@lru_cache(maxsize=None)
def big_data_hive() -> bytes:
    """A 1.5 hive holding a db big-data value (the BCD sample relabelled 1.5, then written by us)."""
    data = bytearray(base_hive())
    struct.pack_into("<I", data, 24, 5)
    struct.pack_into("<I", data, 508, base_block_checksum(data))
    hive = Hive.from_bytes(bytes(data))
    w = HiveWriter(hive)
    w.set_value(hive.root, "big", RegType.BINARY, bytes(range(256)) * 100)
    out = w.commit()
    assert Hive.from_bytes(out).is_big_data(Hive.from_bytes(out).root.value("big").vk)  # type: ignore[union-attr]
    return out


def exercise(data: bytes, fix_checksum: bool = True) -> None:
    """Open, walk, read every value, check, then edit; only our errors may escape."""
    buf = bytearray(data)
    if fix_checksum and len(buf) >= 512:
        struct.pack_into("<I", buf, 508, base_block_checksum(buf))
    try:
        hive = Hive.from_bytes(bytes(buf), allow_dirty=True)
        for key in hive.walk():
            key.class_name
            for v in key.values():
                v.value
        check_hive(hive)
        if not hive.dirty:
            w = HiveWriter(hive)
            k = w.add_key(hive.root, "FuzzKey")
            w.set_value(k, "v", RegType.BINARY, b"x" * 100)
            w.delete_key(k)
            Hive.from_bytes(w.commit())
    except Error:
        pass


@FUZZ
@given(st.integers(0, 511), st.binary(min_size=1, max_size=8), st.booleans())
def test_base_block(offset: int, patch: bytes, fix: bool) -> None:
    data = bytearray(base_hive())
    data[offset:offset + len(patch)] = patch
    exercise(bytes(data[:len(base_hive())]), fix_checksum=fix)


@FUZZ
@given(st.sampled_from([0, 4096, 8192]), st.integers(0, 7), st.integers(0, 2**32 - 1))
def test_hbin_header(bin_off: int, field: int, value: int) -> None:
    data = bytearray(base_hive())
    struct.pack_into("<I", data, BASE_BLOCK_SIZE + bin_off + field * 4, value)
    exercise(bytes(data))


CELL_SIZES = st.one_of(st.sampled_from([0, 1, -1, 4, -4, 8, -8, 16, -16, 2**31 - 1, -2**31, -2**31 + 8, 4096, -4096]),
                       st.integers(-2**31, 2**31 - 1))


@FUZZ
@given(st.data(), CELL_SIZES)
def test_cell_sizes(data: st.DataObject, size: int) -> None:
    hive = Hive.from_bytes(base_hive())
    cells = sorted(list(hive.allocated) + list(hive.free))
    off = data.draw(st.sampled_from(cells))
    buf = bytearray(base_hive())
    struct.pack_into("<i", buf, BASE_BLOCK_SIZE + off, size)
    exercise(bytes(buf))


@FUZZ
@given(st.lists(st.tuples(st.integers(BASE_BLOCK_SIZE, 16383), st.integers(0, 255)), min_size=1, max_size=30))
def test_random_bytes(patches: list[tuple[int, int]]) -> None:
    buf = bytearray(base_hive())
    for off, b in patches:
        buf[off] = b
    exercise(bytes(buf))


@FUZZ
@given(st.data())
def test_subkey_list_entries(data: st.DataObject) -> None:
    """Point list entries at other keys (ancestors, itself, siblings, non-keys): cycles must be caught."""
    hive = Hive.from_bytes(base_hive())
    keys = list(hive.walk())
    with_lists = [k for k in keys if k.nk.subkey_count]
    key = data.draw(st.sampled_from(with_lists))
    target = data.draw(st.one_of(st.sampled_from([k.offset for k in keys]), st.sampled_from(sorted(hive.allocated)),
                                 st.integers(0, 2**32 - 1)))
    index = data.draw(st.integers(0, key.nk.subkey_count - 1))
    buf = bytearray(base_hive())
    struct.pack_into("<I", buf, BASE_BLOCK_SIZE + key.nk.subkey_list + 4 + 4 + index * 8, target)
    exercise(bytes(buf))


@FUZZ
@given(st.data())
def test_big_data(data: st.DataObject) -> None:
    base = big_data_hive()
    hive = Hive.from_bytes(base)
    vk = hive.root.value("big").vk  # type: ignore[union-attr]
    db = vk.data_offset
    count, seg_list = struct.unpack_from("<HI", hive.cell(db), 2)
    targets = [db, seg_list] + list(struct.unpack_from(f"<{count}I", hive.cell(seg_list)))
    cell = data.draw(st.sampled_from(targets))
    rel = data.draw(st.integers(-4, 16))
    value = data.draw(st.sampled_from([0, 1, 2, 0xFFFF, 0xFFFFFFFF, 0x80000000, cell, seg_list, db]))
    buf = bytearray(base)
    pos = BASE_BLOCK_SIZE + cell + 4 + rel
    struct.pack_into("<I", buf, pos, value)
    exercise(bytes(buf))


@FUZZ
@given(st.integers(0, 2**31 - 1))
def test_big_data_vk_size(size: int) -> None:
    base = big_data_hive()
    hive = Hive.from_bytes(base)
    v = hive.root.value("big")
    buf = bytearray(base)
    struct.pack_into("<I", buf, BASE_BLOCK_SIZE + v.offset + 4 + 4, size)  # type: ignore[union-attr]
    exercise(bytes(buf))


@FUZZ
@given(st.integers(0, 16384))
def test_truncated(n: int) -> None:
    exercise(base_hive()[:n])


def test_sample_exercise_is_clean() -> None:
    """The unmutated samples go through the whole exercise without any error."""
    for data in (base_hive(), big_data_hive()):
        hive = Hive.from_bytes(data)
        assert check_hive(hive) == []
        exercise(data)
