"""MBR/EBR parsing, rewriting and building, checked against sfdisk on real (sparse) disk image files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

try:  # tests/disk may become a package; the helpers are a sibling module either way
    from .pt_testutil import (MiB, apply, make_disk, node_number, parse_file, sfdisk_dump, sfdisk_json,
                              sfdisk_verify)
except ImportError:
    from pt_testutil import (MiB, apply, make_disk, node_number, parse_file, sfdisk_dump, sfdisk_json,
                             sfdisk_verify)

from core.partition import mbr
from core.partition.c_mbr import MBR_ENTRY, build_entry
from core.partition.model import Partition, PartitionTable
from core.partition.detect import read_partition_table
from core.errors import FormatError, UsageError
from core.io.reader import BytesReader

# 3 primaries (the first active), an extended partition with 3 logical ones: the layout sfdisk users and
# old Windows multi-boot disks have. Sizes in MiB so the same script works for 512 and 4096-byte sectors.
SCRIPT = """label: dos
label-id: 0x1234abcd

size=64M, type=7, bootable
size=32M, type=c
size=16M, type=27
type=f
size=20M, type=7
size=20M, type=83
type=b
"""
BOOT_CODE = bytes(range(256)) + bytes(range(184))  # recognisable 440 bytes


def source_sectors(path: Path, table: PartitionTable) -> tuple[bytes, dict[int, bytes]]:
    """Sector 0 and the EBR sectors, as a backup stores them (the table's meta areas)."""
    with open(path, "rb") as f:
        def read(off: int) -> bytes:
            f.seek(off)
            return f.read(table.sector_size)
        return read(0), {m.offset: read(m.offset) for m in table.meta if m.role == "ebr"}


@pytest.fixture(params=[512, 4096], ids=["512", "4Kn"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int]:
    ss = request.param
    path = make_disk(tmp_path / "src.img", 256 * MiB, SCRIPT, ss)
    with open(path, "r+b") as f:
        f.write(BOOT_CODE)
    return path, ss


def check_against_sfdisk(table: PartitionTable, ref: dict) -> None:
    ss = ref["sectorsize"]
    assert table.scheme == "mbr" and table.sector_size == ss
    assert table.disk_id == ref["id"]
    ours = {p.number: p for p in table.partitions}
    if table.extended is not None:
        ours[table.extended.number] = table.extended
    theirs = {node_number(p["node"]): p for p in ref["partitions"]}
    assert sorted(ours) == sorted(theirs)
    for n, p in theirs.items():
        mine = ours[n]
        assert (mine.start, mine.size) == (p["start"] * ss, p["size"] * ss), n
        assert int(mine.type_id, 16) == int(p["type"], 16), n
        assert mine.bootable == p.get("bootable", False), n
        assert mine.logical == (n >= 5), n


def test_parse_matches_sfdisk(source: tuple[Path, int]) -> None:
    path, ss = source
    table = parse_file(path, ss)
    check_against_sfdisk(table, sfdisk_json(path, ss))
    assert [p.number for p in table.partitions] == [1, 2, 3, 5, 6, 7]
    assert table.extended is not None and table.extended.type_id == "0x0f" and table.extended.number == 4
    assert table.meta[0].offset == 0 and table.meta[0].role == "mbr" and table.meta[0].length == ss
    ebrs = [m for m in table.meta if m.role == "ebr"]
    assert len(ebrs) == 3 and ebrs[0].offset == table.extended.start
    # libfdisk puts each EBR at the start of the 1 MiB alignment gap in front of its logical partition.
    for m, p in zip(ebrs, table.partitions[3:]):
        assert p.start - m.offset == MiB and m.length == ss
    assert table.warnings == ()


def test_blank_disk_has_no_partition_table(tmp_path: Path) -> None:
    path = apply(tmp_path / "blank.img", 64 * MiB, [])
    with pytest.raises(FormatError, match="no partition table"):
        parse_file(path)


def _rewrite(src: Path, ss: int, dst: Path, size: int, keep: set[int] | None) -> PartitionTable:
    table = parse_file(src, ss)
    sector0, ebrs = source_sectors(src, table)
    writes = mbr.rewrite_for_disk(sector0, ebrs, ss, size, keep)
    assert all(off % ss == 0 and len(data) == ss for off, data in writes)
    apply(dst, size, writes)
    assert "No errors detected" in sfdisk_verify(dst, ss)
    out = parse_file(dst, ss)
    check_against_sfdisk(out, sfdisk_json(dst, ss))
    raw = dst.read_bytes()[:512]
    assert raw[:440] == BOOT_CODE and raw[440:446] == sector0[440:446]  # boot code, signature, reserved
    return out


def _layout(table: PartitionTable) -> list[tuple[int, int, int, str]]:
    return [(p.number, p.start, p.size, p.type_id) for p in table.partitions]


def test_rewrite_all_onto_larger_disk(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    src = parse_file(path, ss)
    out = _rewrite(path, ss, tmp_path / "big.img", 512 * MiB, None)
    assert _layout(out) == _layout(src) and out.extended == src.extended and out.disk_id == src.disk_id


def test_rewrite_drop_middle_logical(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    src = parse_file(path, ss)
    out = _rewrite(path, ss, tmp_path / "big.img", 512 * MiB, {1, 2, 3, 5, 7})
    old = {p.number: p for p in src.partitions}
    # Linux renumbers logical partitions: the old 7 is now 6.
    assert [(p.number, p.start, p.size) for p in out.partitions] == [
        (n, old[o].start, old[o].size) for n, o in [(1, 1), (2, 2), (3, 3), (5, 5), (6, 7)]]


def test_rewrite_drop_first_logical_moves_ebr(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    src = parse_file(path, ss)
    out = _rewrite(path, ss, tmp_path / "big.img", 512 * MiB, {1, 3, 6, 7})
    old = {p.number: p for p in src.partitions}
    assert [(p.number, p.start, p.type_id) for p in out.partitions] == [
        (1, old[1].start, "0x07"), (3, old[3].start, "0x27"), (5, old[6].start, "0x83"),
        (6, old[7].start, "0x0b")]
    assert src.extended is not None
    assert [m.offset for m in out.meta if m.role == "ebr"][0] == src.extended.start


def test_rewrite_onto_smaller_disk_trims_extended(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    src = parse_file(path, ss)
    end6 = src.by_number(6).end  # type: ignore[union-attr]
    out = _rewrite(path, ss, tmp_path / "small.img", end6 + MiB, {1, 2, 5, 6})
    assert [p.number for p in out.partitions] == [1, 2, 5, 6]
    assert out.extended is not None and out.extended.end == end6 + MiB
    # Stale EBR of the dropped logical 7 lies beyond the new disk: nothing may be written there.


def test_rewrite_drop_all_logicals_drops_extended(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    out = _rewrite(path, ss, tmp_path / "big.img", 300 * MiB, {1, 2})
    assert out.extended is None and [p.number for p in out.partitions] == [1, 2]
    assert not [m for m in out.meta if m.role == "ebr"]


def test_rewrite_refuses_partition_past_new_end(source: tuple[Path, int]) -> None:
    path, ss = source
    table = parse_file(path, ss)
    sector0, ebrs = source_sectors(path, table)
    with pytest.raises(UsageError, match="partition 7"):
        mbr.rewrite_for_disk(sector0, ebrs, ss, 200 * MiB, None)
    with pytest.raises(UsageError, match="no partition"):
        mbr.rewrite_for_disk(sector0, ebrs, ss, 512 * MiB, {1, 9})
    with pytest.raises(FormatError, match="not among the EBR sectors"):
        mbr.rewrite_for_disk(sector0, {}, ss, 512 * MiB, None)


def test_build_reads_back_identically(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    table = parse_file(path, ss)
    writes = mbr.build(table.partitions, table.disk_size, ss, table.disk_id, BOOT_CODE,
                       extended=table.extended)
    out = apply(tmp_path / "built.img", table.disk_size, writes)
    assert sfdisk_dump(out, ss) == sfdisk_dump(path, ss)
    assert "No errors detected" in sfdisk_verify(out, ss)
    assert parse_file(out, ss) == table
    # The same sector 0 and EBRs byte for byte, CHS included (sfdisk uses the 255/63 geometry as we do).
    with open(path, "rb") as a, open(out, "rb") as b:
        for m in table.meta:
            a.seek(m.offset)
            b.seek(m.offset)
            assert a.read(m.length) == b.read(m.length), m


def test_build_refuses_bad_layouts() -> None:
    ss, size = 512, 64 * MiB
    p1 = Partition(1, MiB, 8 * MiB, "0x07")
    with pytest.raises(UsageError, match="overlaps"):
        mbr.build([p1, Partition(2, 4 * MiB, MiB, "0x07")], size, ss, "0x1")
    with pytest.raises(UsageError, match="extended"):
        mbr.build([p1, Partition(5, 20 * MiB, MiB, "0x07", logical=True)], size, ss, "0x1")
    with pytest.raises(UsageError, match="does not fit"):
        mbr.build([Partition(1, MiB, size, "0x07")], size, ss, "0x1")
    with pytest.raises(UsageError, match="EBR"):
        mbr.build([Partition(5, 10 * MiB, MiB, "0x07", logical=True)], size, ss, "0x1",
                  extended=Partition(2, 10 * MiB, 10 * MiB, "0x0f"))


# --- hostile input (in memory) --------------------------------------------------------------------------

def _image(size: int = 64 * MiB) -> bytearray:
    logicals = [Partition(5 + i, (20 + 4 * i) * MiB, 2 * MiB, "0x07", logical=True) for i in range(3)]
    writes = mbr.build([Partition(1, MiB, 8 * MiB, "0x07", bootable=True)] + logicals, size, 512,
                       "0xdeadbeef", extended=Partition(2, 19 * MiB, 20 * MiB, "0x05"))
    img = bytearray(size)
    for off, data in writes:
        img[off:off + len(data)] = data
    return img


def _parse(img: bytes | bytearray) -> PartitionTable:
    return read_partition_table(BytesReader(bytes(img)), 512)


def _set_entry(img: bytearray, sector_off: int, slot: int, raw: bytes) -> None:
    off = sector_off + 446 + 16 * slot
    img[off:off + 16] = raw


def test_hostile_base_image_parses() -> None:
    t = _parse(_image())
    assert [p.number for p in t.partitions] == [1, 5, 6, 7] and t.partitions[0].bootable


def test_ebr_loop_detected() -> None:
    img = _image()
    ebr3 = 26 * MiB  # the third EBR: first sector after logical 6 (24-26 MiB)
    t = _parse(img)
    assert [m.offset for m in t.meta if m.role == "ebr"][2] == ebr3
    # Link from the third EBR back to the first (relative start 0): a loop, not an endless walk.
    _set_entry(img, ebr3, 1, build_entry(0, 0x05, 0, 4096, chs_base=19 * 2048))
    with pytest.raises(FormatError, match="loops"):
        _parse(img)


def test_ebr_chain_length_capped() -> None:
    # 200 logical partitions of one sector, each EBR right before it: longer than any real chain.
    size = 4 * MiB
    img = bytearray(size)
    img[446:462] = build_entry(0, 0x05, 1, 1000)
    img[510:512] = b"\x55\xaa"
    for i in range(200):
        lba = 1 + 2 * i
        _set_entry(img, lba * 512, 0, build_entry(0, 0x07, 1, 1, chs_base=lba))
        _set_entry(img, lba * 512, 1, build_entry(0, 0x05, 2 * (i + 1), 2, chs_base=1))
        img[lba * 512 + 510:lba * 512 + 512] = b"\x55\xaa"
    with pytest.raises(FormatError, match="longer than 128"):
        _parse(img)


@pytest.mark.parametrize("status", [0x01, 0x7F, 0x81, 0xFF])
def test_bad_status_byte(status: int) -> None:
    img = _image()
    img[446] = status
    with pytest.raises(FormatError, match=f"status byte 0x{status:02x}"):
        _parse(img)
    img = _image()
    img[446 + 48] = status  # an unused slot: the Windows MBR code rejects it too
    with pytest.raises(FormatError, match="status"):
        _parse(img)


def test_entries_beyond_disk_and_overlaps() -> None:
    img = _image()
    struct.pack_into("<I", img, 446 + 12, 1 << 30)  # partition 1 size: far past the 64 MiB disk
    with pytest.raises(FormatError, match="past the end of the disk"):
        _parse(img)
    img = _image()
    _set_entry(img, 0, 2, build_entry(0, 0x07, 4096, 2048))  # inside partition 1
    with pytest.raises(FormatError, match="overlaps"):
        _parse(img)
    img = _image()
    _set_entry(img, 0, 2, build_entry(0, 0x0F, 50 * 2048, 2048))
    with pytest.raises(FormatError, match="more than one extended"):
        _parse(img)
    img = _image()
    ebr1 = 19 * MiB
    _set_entry(img, ebr1, 0, build_entry(0, 0x07, 2048, 30 * 2048, chs_base=19 * 2048))  # past the container
    with pytest.raises(FormatError, match="not inside the extended"):
        _parse(img)
    img = _image()
    _set_entry(img, ebr1, 0, build_entry(0, 0x07, 2048, 5 * 2048, chs_base=19 * 2048))  # over logical 6's EBR
    with pytest.raises(FormatError, match="overlaps"):
        _parse(img)


def test_ebr_without_signature_and_link_outside_container() -> None:
    img = _image()
    img[19 * MiB + 510] = 0
    with pytest.raises(FormatError, match="EBR at LBA 38912.*0x55AA"):
        _parse(img)
    img = _image()
    fields = MBR_ENTRY.parse(img, 19 * MiB + 446 + 16)
    fields["lba_start"] = 100 * 2048
    _set_entry(img, 19 * MiB, 1, MBR_ENTRY.build(**fields))
    with pytest.raises(FormatError, match="outside the extended"):
        _parse(img)
