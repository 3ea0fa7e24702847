"""Fuzz the filesystem parsers (R-31): only `core.errors.Error` subclasses escape, in bounded time/memory.

Mutations are structure-aware where it matters: MFT records and INDX blocks are mutated in their
logical form and then re-protected with valid fixups, so the attribute, runlist and index parsers
behind the fixup check are reached; other cases break the fixups on purpose. The base images are the
real Windows-formatted sample and a FAT32 volume made by mkfs.vfat + mtools.
"""

from __future__ import annotations

import gzip
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.fs.fat import fat_usage, parse_fat_boot
from core.fs.probe import probe_usage
from core.fs.model import FsUsage
from core.extents import merge_extents
from core.fs.ntfs_boot import parse_ntfs_boot
from core.fs.ntfs_lookup import find_path, iter_directory
from core.fs.c_ntfs import AT_INDEX_ALLOCATION
from core.fs.ntfs_mft import Attribute, decode_runlist
from core.fs.ntfs_usage import ntfs_usage
from core.fs.ntfs_volume import NtfsVolume, Stream
from core.errors import Error
from core.io.reader import BytesReader
from tests.conftest import need_root_tools, shared_fixture
from tests.fuzz_targets import refix as _refix, unfix as _unfix

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TIME_LIMIT = 5.0  # seconds per example: generous for a loaded CI box, tiny against a runaway loop
MEMORY_LIMIT = 64 * 1024 * 1024  # < 64 MiB per case


class PatchedReader:
    """A `Reader` over immutable base bytes with a few byte ranges replaced (no 35 MB copy per case)."""

    def __init__(self, base: bytes, patches: dict[int, bytes]) -> None:
        self.base = base
        self.patches = patches
        self.size = len(base)

    def read(self, offset: int, length: int) -> bytes:
        data = bytearray(self.base[offset:offset + length])
        for p_off, p in self.patches.items():
            lo, hi = max(offset, p_off), min(offset + len(data), p_off + len(p))
            if lo < hi:
                data[lo - offset:hi - offset] = p[lo - p_off:hi - p_off]
        return bytes(data)


def _check(call: object, size: int) -> FsUsage | None:
    """Run the parser under time and memory limits; only our errors may escape; check invariants."""
    tracemalloc.start()
    t = time.monotonic()
    try:
        result = call()  # type: ignore[operator]
    except Error:
        result = None
    finally:
        elapsed = time.monotonic() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < TIME_LIMIT and peak < MEMORY_LIMIT, (elapsed, peak)
    if isinstance(result, FsUsage):
        assert result.used == merge_extents(result.used)
        assert all(0 <= o and o + n <= size for o, n in [*result.used, *result.zeroed])
    return result if isinstance(result, FsUsage) else None


# --- NTFS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ntfs_image() -> bytes:
    with gzip.open(shared_fixture("ntfs/dfvfs_windows_volume.raw.gz"), "rb") as f:
        return f.read()


MFT = 4 * 4096  # the sample's $MFT is at LCN 4, 1024-byte records


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_ntfs_boot_sector(ntfs_image: bytes, edits: list[tuple[int, int]]) -> None:
    sector = bytearray(ntfs_image[:512])
    for pos, value in edits:
        sector[pos] = value
    try:
        parse_ntfs_boot(bytes(sector), len(ntfs_image))
    except Error:
        pass
    _check(lambda: probe_usage(PatchedReader(ntfs_image, {0: bytes(sector)})), len(ntfs_image))


BPB_FIELDS = st.sampled_from([(0x0B, 2), (0x0D, 1), (0x28, 8), (0x30, 8), (0x38, 8), (0x40, 1), (0x44, 1)])


@FUZZ
@given(BPB_FIELDS, st.integers(-(1 << 63), (1 << 64) - 1))
def test_fuzz_ntfs_bpb_fields(ntfs_image: bytes, field: tuple[int, int], value: int) -> None:
    off, size = field
    sector = bytearray(ntfs_image[:512])
    sector[off:off + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    _check(lambda: ntfs_usage(PatchedReader(ntfs_image, {0: bytes(sector)})), len(ntfs_image))


def _mutate_logical(logical: bytearray, edits: list[tuple[int, int]], words: list[tuple[int, int]]) -> None:
    for pos, value in edits:
        logical[pos % len(logical)] = value
    for pos, value in words:  # 32-bit fields: attribute lengths, offsets, sizes, huge values
        p = pos % (len(logical) - 4)
        logical[p:p + 4] = value.to_bytes(4, "little")


@FUZZ
@given(st.sampled_from([0, 1, 3, 5, 6, 64]), st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)),
                                                        max_size=6),
       st.lists(st.tuples(st.integers(0, 1023), st.integers(0, (1 << 32) - 1)), max_size=3), st.booleans())
def test_fuzz_mft_records(ntfs_image: bytes, record: int, edits: list[tuple[int, int]],
                          words: list[tuple[int, int]], refix: bool) -> None:
    off = MFT + record * 1024
    raw = ntfs_image[off:off + 1024]
    if refix:  # reach the attribute parsers behind a valid fixup
        logical = _unfix(raw)
        _mutate_logical(logical, edits, words)
        patched = _refix(logical)
    else:  # raw damage, fixups included
        buf = bytearray(raw)
        _mutate_logical(buf, edits, words)
        patched = bytes(buf)
    reader = PatchedReader(ntfs_image, {off: patched})
    _check(lambda: ntfs_usage(reader), len(ntfs_image))
    _check(lambda: find_path(NtfsVolume(reader), "Windows/System32/winload.exe"), len(ntfs_image))


@FUZZ
@given(st.binary(min_size=0, max_size=64), st.integers(-5, 1 << 40), st.integers(0, 1 << 20))
def test_fuzz_runlists(ntfs_image: bytes, pairs: bytes, highest: int, nr_clusters: int) -> None:
    attr = Attribute(type=0x80, name="", flags=0, instance=0, non_resident=True, lowest_vcn=0,
                     highest_vcn=highest, mapping_pairs=pairs)
    try:
        runs = decode_runlist(attr, nr_clusters, "fuzz runlist")
    except Error:
        return
    assert all(r.lcn is None or 0 <= r.lcn and r.lcn + r.length <= nr_clusters for r in runs)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
       st.lists(st.tuples(st.integers(0, 4095), st.integers(0, (1 << 32) - 1)), max_size=3))
def test_fuzz_root_index_block(ntfs_image: bytes, edits: list[tuple[int, int]],
                               words: list[tuple[int, int]]) -> None:
    vol = NtfsVolume(BytesReader(ntfs_image))
    alloc = vol.stream(vol.record(5), AT_INDEX_ALLOCATION, "$I30")
    assert isinstance(alloc, Stream) and alloc.runs[0].lcn is not None
    off = alloc.runs[0].lcn * 4096
    logical = _unfix(ntfs_image[off:off + 4096])
    _mutate_logical(logical, edits, words)
    reader = PatchedReader(ntfs_image, {off: _refix(logical)})
    _check(lambda: list(iter_directory(NtfsVolume(reader), 5)), len(ntfs_image))
    _check(lambda: ntfs_usage(reader), len(ntfs_image))


# --- FAT --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fat_image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    need_root_tools("mkfs.vfat", "mcopy", "mmd")
    d = tmp_path_factory.mktemp("fatfuzz")
    img = d / "esp.img"
    with open(img, "wb") as f:
        f.truncate(40 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "32", "-s", "1", str(img)], check=True, capture_output=True)
    for args in (["mmd", "-i", str(img), "::/EFI", "::/EFI/Microsoft", "::/EFI/Microsoft/Boot"],):
        subprocess.run(args, check=True, capture_output=True)
    src = d / "BCD"
    src.write_bytes(b"x" * 20000)
    subprocess.run(["mcopy", "-i", str(img), str(src), "::/EFI/Microsoft/Boot/BCD"], check=True,
                   capture_output=True)
    return Path(img).read_bytes()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 95), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_fat_bpb(fat_image: bytes, edits: list[tuple[int, int]]) -> None:
    sector = bytearray(fat_image[:512])
    for pos, value in edits:
        sector[pos] = value
    try:
        parse_fat_boot(bytes(sector), len(fat_image))
    except Error:
        pass
    _check(lambda: probe_usage(PatchedReader(fat_image, {0: bytes(sector)})), len(fat_image))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=16),
       st.sampled_from(["fat", "data"]))
def test_fuzz_fat_tables_and_directories(fat_image: bytes, edits: list[tuple[int, int]], where: str) -> None:
    geo = parse_fat_boot(fat_image[:512], len(fat_image))
    base = geo.fat_offset if where == "fat" else geo.data_offset  # FAT entries / root, EFI dirs
    patches = {base + pos: bytes([value]) for pos, value in edits}
    u = _check(lambda: fat_usage(PatchedReader(fat_image, patches)), len(fat_image))
    assert u is None or u.used[0] == (0, u.used[0][1])  # the system area is always imaged
