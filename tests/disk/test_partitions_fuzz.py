"""Property tests: mutated MBR/EBR/GPT bytes make the parsers and writers raise only `FormatError`.

Security property: a hostile or corrupt disk can never crash the engine with another exception type,
loop forever, or make it allocate memory in proportion to a field's value. GPT mutations recompute the
CRCs so the checks after the CRC (geometry, LBA ranges, overlaps, names) are exercised too. Seeds are
tables written by sfdisk and sgdisk on small image files.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

try:  # tests/disk may become a package; the helpers are a sibling module either way
    from .pt_testutil import MiB, make_disk, need
except ImportError:
    from pt_testutil import MiB, make_disk, need

from core.partition import gpt, mbr
from core.partition.c_gpt import GPT_HEADER
from core.partition.model import PartitionTable
from core.partition.detect import read_partition_table
from core.errors import Error, FormatError, UsageError
from core.io.reader import BytesReader

SIZE = 4 * MiB
SS = 512
FUZZ = settings(max_examples=250, deadline=timedelta(milliseconds=800),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Explicit small starts: sfdisk's default 1 MiB alignment would not fit three logicals in 4 MiB.
MBR_SCRIPT = """label: dos
label-id: 0x2468ace0
start=64, size=256, type=7, bootable
start=320, size=256, type=c
start=1024, size=6000, type=5
start=1088, size=256, type=7
start=1408, size=256, type=83
start=1728, size=256, type=b
"""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("seeds")
    m = make_disk(d / "m.img", SIZE, MBR_SCRIPT)
    need("sgdisk")
    g = d / "g.img"
    g.write_bytes(bytes(SIZE))
    subprocess.run(["sgdisk", "-a", "8", "-n", "1:0:+1M", "-t", "1:ef00", "-c", "1:EFI",
                    "-n", "2:0:+128K", "-t", "2:0c01", "-n", "3:0:0", "-t", "3:0700", "-c", "3:Windows",
                    str(g)],
                   check=True, capture_output=True)
    out = {"mbr": m.read_bytes(), "gpt": g.read_bytes()}
    for name, data in out.items():  # seeds must be valid, or the fuzz would only test the first check
        assert parse(data).partitions, name
    return out


def parse(data: bytes | bytearray) -> PartitionTable:
    return read_partition_table(BytesReader(bytes(data)), SS)


def check(data: bytes | bytearray) -> None:
    """Parse; only FormatError may escape, and an accepted table must be sane."""
    try:
        t = parse(data)
    except FormatError as e:
        # --hypothesis-show-statistics shows which checks the mutations reach
        event("refused: " + re.sub(r"\d+", "N", str(e.kwargs.get("detail")))[:70])
        return
    event("accepted")
    spans = sorted((p.start, p.end) for p in t.partitions)
    assert all(0 < s < e <= len(data) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert all(0 <= m.offset and m.offset + m.length <= len(data) for m in t.meta)
    if t.extended is not None:
        assert all(t.extended.start < p.start and p.end <= t.extended.end for p in t.partitions if p.logical)


def ebr_offsets(data: bytes) -> list[int]:
    return [m.offset for m in parse(data).meta if m.role == "ebr"]


@FUZZ
@given(st.data())
def test_mbr_and_ebr_mutations(seeds: dict[str, bytes], data: st.DataObject) -> None:
    img = bytearray(seeds["mbr"])
    sectors = [0] + ebr_offsets(seeds["mbr"])
    for _ in range(data.draw(st.integers(1, 6))):
        base = data.draw(st.sampled_from(sectors))
        off = base + data.draw(st.integers(440, 511))  # signature, entries and boot signature
        img[off] = data.draw(st.integers(0, 255))
    check(img)


@FUZZ
@given(st.data())
def test_ebr_links_anywhere(seeds: dict[str, bytes], data: st.DataObject) -> None:
    # Links pointing anywhere (backwards = loops, forwards, off the disk) with any size.
    img = bytearray(seeds["mbr"])
    for off in ebr_offsets(seeds["mbr"]):
        if data.draw(st.booleans()):
            struct.pack_into("<II", img, off + 446 + 16 + 8, data.draw(st.integers(0, 2 ** 32 - 1)),
                             data.draw(st.integers(0, 2 ** 32 - 1)))
            img[off + 446 + 16 + 4] = data.draw(st.sampled_from([0x05, 0x0F, 0x85, 0x07]))
    check(img)


def fix_header(img: bytearray, lba: int) -> None:
    h = GPT_HEADER.parse(img, lba * SS)
    size = h["header_size"] if 92 <= h["header_size"] <= SS else 92
    raw = bytearray(img[lba * SS:lba * SS + size])
    raw[16:20] = bytes(4)
    struct.pack_into("<I", img, lba * SS + 16, zlib.crc32(raw))


def fix_entries(img: bytearray, lba: int) -> None:
    h = GPT_HEADER.parse(img, lba * SS)
    length = h["num_entries"] * h["entry_size"]
    if length <= 1 << 20:  # beyond the cap the CRC cannot matter
        start = h["entries_lba"] * SS
        struct.pack_into("<I", img, lba * SS + 0x58, zlib.crc32(img[start:start + length]))
    fix_header(img, lba)


HEADER_FIELDS = [(name, *GPT_HEADER.offsets[name]) for name, _ in GPT_HEADER.fields if name != "header_crc32"]


@FUZZ
@given(st.data())
def test_gpt_header_fields_with_valid_crc(seeds: dict[str, bytes], data: st.DataObject) -> None:
    img = bytearray(seeds["gpt"])
    last = SIZE // SS - 1
    copies = data.draw(st.sampled_from([[1], [last], [1, last]]))
    for _ in range(data.draw(st.integers(1, 3))):
        _, off, size = data.draw(st.sampled_from(HEADER_FIELDS))
        value = data.draw(st.one_of(st.integers(0, 2 ** (8 * size) - 1), st.integers(0, 70000)))
        if size <= 8:
            raw = value.to_bytes(size, "little")
        else:
            raw = data.draw(st.binary(min_size=size, max_size=size))
        for lba in copies:
            img[lba * SS + off:lba * SS + off + size] = raw
    for lba in copies:
        fix_entries(img, lba) if data.draw(st.booleans()) else fix_header(img, lba)
    check(img)


@FUZZ
@given(st.data())
def test_gpt_entries_with_valid_crc(seeds: dict[str, bytes], data: st.DataObject) -> None:
    img = bytearray(seeds["gpt"])
    last = SIZE // SS - 1
    for _ in range(data.draw(st.integers(1, 8))):
        off = data.draw(st.integers(0, 4 * 128 - 1))  # the used entries and one spare
        value = data.draw(st.integers(0, 255))
        for lba in (1, last):
            h = GPT_HEADER.parse(img, lba * SS)
            img[h["entries_lba"] * SS + off] = value
    for lba in (1, last):
        fix_entries(img, lba)
    check(img)


@FUZZ
@given(st.binary(min_size=512, max_size=512), st.binary(min_size=92, max_size=512), st.booleans())
def test_random_sectors(sector0: bytes, lba1: bytes, protective: bool) -> None:
    img = bytearray(64 * 1024)
    img[:512] = sector0
    img[510:512] = b"\x55\xaa"
    if protective:
        img[446 + 4] = 0xEE
        img[512:512 + len(lba1)] = b"EFI PART" + lba1[8:]
        fix_header(img, 1)
    check(img)


def test_huge_entry_array_is_refused_fast(seeds: dict[str, bytes]) -> None:
    img = bytearray(seeds["gpt"])
    for lba in (1, SIZE // SS - 1):
        struct.pack_into("<II", img, lba * SS + 0x50, 0xFFFFFFFF, 3 << 30)
        fix_header(img, lba)
    with pytest.raises(FormatError, match="not 128 x 2"):
        parse(img)
    for lba in (1, SIZE // SS - 1):
        struct.pack_into("<II", img, lba * SS + 0x50, 0xFFFFFFFF, 128)
        fix_header(img, lba)
    with pytest.raises(FormatError, match="exceeds the 1048576 byte cap"):
        parse(img)


@FUZZ
@given(st.data())
def test_writers_on_corrupt_sources(seeds: dict[str, bytes], data: st.DataObject) -> None:
    # Restore feeds the writers bytes from an image; corrupt ones must stop with a core error only.
    g = bytearray(seeds["gpt"][SS:34 * SS])
    m = bytearray(seeds["mbr"][:SS])
    ebrs = {off: bytearray(seeds["mbr"][off:off + SS]) for off in ebr_offsets(seeds["mbr"])}
    for _ in range(data.draw(st.integers(1, 4))):
        g[data.draw(st.integers(0, 92 + 3 * 128))] = data.draw(st.integers(0, 255))
        m[data.draw(st.integers(446, 511))] = data.draw(st.integers(0, 255))
    ga = bytearray(g)  # the same with CRCs fixed, so the writer's later checks are reached
    h = GPT_HEADER.parse(ga)
    if h["num_entries"] * h["entry_size"] <= 1 << 20:
        struct.pack_into("<I", ga, 0x58, zlib.crc32(ga[SS:SS + h["num_entries"] * h["entry_size"]]))
    fix_header(ga, 0)
    size = data.draw(st.integers(0, 1 << 34)) // SS * SS
    keep = data.draw(st.none() | st.sets(st.integers(0, 8)))
    for call in (lambda: gpt.rewrite_for_disk(bytes(g[:SS]), bytes(g[SS:]), SS, size, keep),
                 lambda: gpt.rewrite_for_disk(bytes(ga[:SS]), bytes(ga[SS:]), SS, size, keep),
                 lambda: mbr.rewrite_for_disk(bytes(m), {k: bytes(v) for k, v in ebrs.items()}, SS, size,
                                              keep)):
        try:
            writes = call()
        except (FormatError, UsageError):
            continue
        except Error as e:  # pragma: no cover - a different core error would still be a bug here
            pytest.fail(f"unexpected {type(e).__name__}: {e}")
        assert all(0 <= off and off + len(b) <= size for off, b in writes)
