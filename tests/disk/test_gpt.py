"""GPT parsing (primary/backup), rewriting for another disk size and building, checked with sgdisk/sfdisk."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

try:  # tests/disk may become a package; the helpers are a sibling module either way
    from .pt_testutil import (MiB, apply, need, node_number, parse_file, run_tool, sfdisk_dump, sfdisk_json,
                              tool_view)
except ImportError:
    from pt_testutil import (MiB, apply, need, node_number, parse_file, run_tool, sfdisk_dump, sfdisk_json,
                             tool_view)

from core.partition import gpt
from core.partition.c_gpt import GPT_HEADER
from core.partition.model import Partition, PartitionTable
from core.partition.detect import read_partition_table
from core.errors import FormatError, UsageError
from core.io.reader import BytesReader

ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
MSR = "e3c9e316-0b5c-4db8-817d-f92df00215ae"
BASIC = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
WINRE = "de94bba4-06d1-4d40-a16a-bfd50179d6ac"
DISK_GUID = "11111111-2222-3333-4444-555555555555"
BOOT_CODE = bytes(range(200, 256)) * 7 + bytes(48)  # 440 recognisable bytes

# Windows 7 UEFI layout (ESP, MSR, Windows) plus a WinRE partition with a non-ASCII name and the
# attributes diskpart sets; the last 19 MiB are free so the table also fits a smaller disk.
SGDISK_ARGS = [
    "-U", DISK_GUID,
    "-n", "1:0:+100M", "-t", "1:ef00", "-c", "1:EFI system partition",
    "-n", "2:0:+16M", "-t", "2:0c01", "-c", "2:Microsoft reserved partition",
    "-n", "3:0:+100M", "-t", "3:0700", "-c", "3:Basic data partition", "-A", "3:set:63",
    "-n", "4:0:+20M", "-t", "4:2700", "-c", "4:Wiederherstellung äöü", "-A", "4:set:0", "-A", "4:set:63",
]


def make_gpt(path: Path, size: int, sector_size: int = 512) -> Path:
    need("sgdisk")
    with open(path, "wb") as f:
        f.truncate(size)
    with tool_view(path, sector_size) as target:
        subprocess.run(["sgdisk", *SGDISK_ARGS, target], check=True, capture_output=True)
    return path


def sgdisk_verify(path: Path, sector_size: int = 512) -> str:
    return run_tool(path, sector_size, "sgdisk", "-v")


@pytest.fixture(params=[512, 4096], ids=["512", "4Kn"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int]:
    return make_gpt(tmp_path / "src.img", 256 * MiB, request.param), request.param


def check_against_tools(table: PartitionTable, path: Path, ss: int) -> None:
    """Every field against `sgdisk -p` / `sgdisk -i N` and `sfdisk --json`."""
    ref = sfdisk_json(path, ss)
    assert table.scheme == "gpt" and table.sector_size == ss == ref["sectorsize"]
    assert table.disk_id == ref["id"].lower()
    listing = run_tool(path, ss, "sgdisk", "-p")
    assert f"Disk identifier (GUID): {table.disk_id.upper()}" in listing
    theirs = {node_number(p["node"]): p for p in ref["partitions"]}
    assert [p.number for p in table.partitions] == sorted(theirs)
    for p in table.partitions:
        info = run_tool(path, ss, "sgdisk", "-i", str(p.number))
        fields = dict(re.findall(r"^([A-Za-z ]+): (.*)$", info, re.M))
        assert fields["Partition GUID code"].split()[0].lower() == p.type_id
        assert fields["Partition unique GUID"].lower() == p.guid
        assert int(fields["First sector"].split()[0]) * ss == p.start
        assert (int(fields["Last sector"].split()[0]) + 1) * ss == p.end
        assert int(fields["Attribute flags"], 16) == p.attributes
        assert fields["Partition name"] == f"'{p.name}'"
        j = theirs[p.number]
        assert (j["start"] * ss, j["size"] * ss, j["type"].lower(), j["uuid"].lower(), j.get("name", "")) == (
            p.start, p.size, p.type_id, p.guid, p.name)


def test_parse_matches_sgdisk(source: tuple[Path, int]) -> None:
    path, ss = source
    table = parse_file(path, ss)
    check_against_tools(table, path, ss)
    assert [p.type_id for p in table.partitions] == [ESP, MSR, BASIC, WINRE]
    assert table.partitions[3].name == "Wiederherstellung äöü"
    assert table.partitions[3].attributes == 0x8000000000000001
    assert table.warnings == () and table.extended is None
    total = 256 * MiB // ss
    n = 128 * 128 // ss  # entry-array sectors: 32 (512) or 4 (4Kn)
    ref = sfdisk_json(path, ss)
    assert (ref["firstlba"], ref["lastlba"]) == (2 + n, total - n - 2)
    assert [(m.role, m.offset, m.length) for m in table.meta] == [
        ("mbr", 0, ss), ("gpt-primary", ss, (1 + n) * ss), ("gpt-backup", (total - 1 - n) * ss, (n + 1) * ss)]


def _corrupt(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def test_damaged_copies(source: tuple[Path, int]) -> None:
    path, ss = source
    good = parse_file(path, ss)
    size = path.stat().st_size
    _corrupt(path, ss + 0x40)  # primary header: disk GUID byte -> header CRC mismatch
    t = parse_file(path, ss)
    assert t.partitions == good.partitions and t.disk_id == good.disk_id and t.meta == good.meta
    assert len(t.warnings) == 1 and "primary GPT damaged" in t.warnings[0] and "CRC32" in t.warnings[0]
    _corrupt(path, ss + 0x40)  # repaired
    _corrupt(path, 2 * ss + 300)  # primary entry array -> array CRC mismatch
    t = parse_file(path, ss)
    assert t.partitions == good.partitions and "primary GPT damaged" in t.warnings[0]
    _corrupt(path, size - ss + 0x30)  # backup header as well: nothing left to trust
    with pytest.raises(FormatError, match="primary and backup both invalid"):
        parse_file(path, ss)
    _corrupt(path, 2 * ss + 300)  # primary good again, backup still bad
    t = parse_file(path, ss)
    assert t.partitions == good.partitions and "backup GPT damaged" in t.warnings[0]


def test_wrong_sector_size_is_explained(tmp_path: Path) -> None:
    path = make_gpt(tmp_path / "g.img", 256 * MiB)
    with pytest.raises(FormatError, match="sector size is probably 512"):
        parse_file(path, 4096)


def _sectors(path: Path, table: PartitionTable) -> tuple[bytes, bytes]:
    """The source's primary header sector and entry array, from its meta areas (as a backup stores them)."""
    area = next(m for m in table.meta if m.role == "gpt-primary")
    with open(path, "rb") as f:
        f.seek(area.offset)
        data = f.read(area.length)
    return data[:table.sector_size], data[table.sector_size:]


def _rewrite(src: Path, ss: int, dst: Path, size: int, keep: set[int] | None) -> PartitionTable:
    table = parse_file(src, ss)
    header, entries = _sectors(src, table)
    writes = [(0, gpt.build_protective_mbr(size, ss, BOOT_CODE))] + gpt.rewrite_for_disk(
        header, entries, ss, size, keep)
    apply(dst, size, writes)
    assert "No problems found" in sgdisk_verify(dst, ss)
    out = parse_file(dst, ss)
    assert out.warnings == ()
    check_against_tools(out, dst, ss)
    with open(dst, "rb") as f:
        assert f.read(440) == BOOT_CODE
    ref = sfdisk_json(dst, ss)
    assert ref["lastlba"] == size // ss - 128 * 128 // ss - 2
    return out


@pytest.mark.parametrize("size", [512 * MiB, 240 * MiB], ids=["larger", "smaller"])
def test_rewrite_all(source: tuple[Path, int], tmp_path: Path, size: int) -> None:
    path, ss = source
    src = parse_file(path, ss)
    out = _rewrite(path, ss, tmp_path / "dst.img", size, None)
    assert out.partitions == src.partitions and out.disk_id == src.disk_id
    backup = next(m for m in out.meta if m.role == "gpt-backup")
    assert backup.offset + backup.length == size


def test_rewrite_keep_subset_smaller(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    src = parse_file(path, ss)
    # Only the ESP and Windows: fits a disk that ends shortly after partition 3.
    size = src.by_number(3).end + 2 * MiB  # type: ignore[union-attr]
    out = _rewrite(path, ss, tmp_path / "dst.img", size, {1, 3})
    assert out.partitions == (src.by_number(1), src.by_number(3))


def test_rewrite_refusals(source: tuple[Path, int]) -> None:
    path, ss = source
    table = parse_file(path, ss)
    header, entries = _sectors(path, table)
    with pytest.raises(UsageError, match="partition 4 ends at LBA"):
        gpt.rewrite_for_disk(header, entries, ss, 230 * MiB)
    with pytest.raises(UsageError, match="no partition"):
        gpt.rewrite_for_disk(header, entries, ss, 512 * MiB, {1, 7})
    with pytest.raises(UsageError, match="too small"):
        gpt.rewrite_for_disk(header, entries, ss, 8 * ss)
    with pytest.raises(FormatError, match="CRC32"):
        gpt.rewrite_for_disk(header, entries[:-1] + b"\x01", ss, 512 * MiB)


def test_build_reads_back_identically(source: tuple[Path, int], tmp_path: Path) -> None:
    path, ss = source
    table = parse_file(path, ss)
    writes = gpt.build(table.partitions, table.disk_size, ss, table.disk_id)
    out = apply(tmp_path / "built.img", table.disk_size, writes)
    assert "No problems found" in sgdisk_verify(out, ss)
    assert sfdisk_dump(out, ss) == sfdisk_dump(path, ss)
    assert parse_file(out, ss) == table
    # Same bytes as sgdisk wrote: protective MBR, headers and both entry arrays.
    with open(path, "rb") as a, open(out, "rb") as b:
        for m in table.meta:
            a.seek(m.offset)
            b.seek(m.offset)
            assert a.read(m.length) == b.read(m.length), m


def test_build_refuses_bad_layouts() -> None:
    ss, size = 512, 64 * MiB
    esp = Partition(1, MiB, 8 * MiB, ESP, guid=DISK_GUID, name="x")
    with pytest.raises(UsageError, match="overlaps"):
        gpt.build([esp, Partition(2, 4 * MiB, MiB, BASIC)], size, ss)
    with pytest.raises(UsageError, match="outside the usable"):
        gpt.build([Partition(1, 0, MiB, BASIC)], size, ss)
    with pytest.raises(UsageError, match="used twice"):
        gpt.build([esp, Partition(1, 20 * MiB, MiB, BASIC)], size, ss)
    with pytest.raises(UsageError, match="not a GUID"):
        gpt.build([Partition(1, MiB, MiB, "0x07")], size, ss)
    with pytest.raises(UsageError, match="name longer"):
        gpt.build([Partition(1, MiB, MiB, BASIC, name="n" * 37)], size, ss)
    fresh = gpt.build([esp, Partition(2, 9 * MiB, MiB, BASIC)], size, ss)  # random GUIDs where missing
    img = bytearray(size)
    for off, data in fresh:
        img[off:off + len(data)] = data
    t = read_partition_table(BytesReader(bytes(img)), ss)
    assert t.partitions[0] == esp and t.partitions[1].guid not in (None, DISK_GUID)


# --- hostile headers with valid CRCs (so the checks after the CRC are reached) ---------------------------

def small_image(ss: int = 512) -> bytearray:
    size = 4 * MiB
    img = bytearray(size)
    parts = [Partition(1, MiB, MiB, ESP, name="EFI"), Partition(2, 2 * MiB, MiB, BASIC, name="C")]
    for off, data in gpt.build(parts, size, ss, DISK_GUID):
        img[off:off + len(data)] = data
    return img


def patch_header(img: bytearray, lba: int, ss: int = 512, **fields: int) -> None:
    """Change header fields at ``lba`` and recompute its CRC."""
    h = GPT_HEADER.parse(img, lba * ss)
    h.update(fields, header_crc32=0)
    raw = GPT_HEADER.build(**h)
    h["header_crc32"] = zlib.crc32(raw)
    img[lba * ss:lba * ss + GPT_HEADER.size] = GPT_HEADER.build(**h)


def patch_entry_both(img: bytearray, index: int, offset: int, fmt: str, value: int, ss: int = 512) -> None:
    """Change one entry field in both arrays and fix both headers' CRCs."""
    last = len(img) // ss - 1
    for hdr_lba in (1, last):
        h = GPT_HEADER.parse(img, hdr_lba * ss)
        base = h["entries_lba"] * ss
        struct.pack_into("<" + fmt, img, base + index * 128 + offset, value)
        crc = zlib.crc32(img[base:base + h["num_entries"] * h["entry_size"]])
        patch_header(img, hdr_lba, ss, entries_crc32=crc)


def _parse(img: bytearray) -> PartitionTable:
    return read_partition_table(BytesReader(bytes(img)), 512)


def test_hostile_headers() -> None:
    last = 4 * MiB // 512 - 1
    assert len(_parse(small_image()).partitions) == 2
    for fields, message in [
        (dict(num_entries=0xFFFFFFFF), "exceeds"),
        (dict(entry_size=129), "128 x 2"),
        (dict(entry_size=0), "128 x 2"),
        (dict(header_size=4096), "header size"),
        (dict(header_size=12), "header size"),
        (dict(my_lba=5), "says it is at LBA 5"),
        (dict(last_usable_lba=1 << 40), "usable LBAs"),
        (dict(first_usable_lba=1), "overlap"),
        (dict(entries_lba=last), "overlap"),
        (dict(alternate_lba=100), "overlap"),
        (dict(revision=0x00020000), "revision"),
    ]:
        img = small_image()
        patch_header(img, 1, **fields)
        patch_header(img, last, **fields)
        with pytest.raises(FormatError, match=message):
            _parse(img)


def test_hostile_entries() -> None:
    img = small_image()
    patch_entry_both(img, 1, 0x28, "Q", 1 << 40)  # partition 2 last LBA far past the disk
    with pytest.raises(FormatError, match="partition 2.*outside the usable"):
        _parse(img)
    img = small_image()
    patch_entry_both(img, 1, 0x20, "Q", 2048 + 100)  # partition 2 starts inside partition 1
    with pytest.raises(FormatError, match="overlaps"):
        _parse(img)
    img = small_image()
    patch_entry_both(img, 0, 0x20, "Q", 5000)  # first > last
    with pytest.raises(FormatError, match="outside the usable"):
        _parse(img)
    img = small_image()
    patch_entry_both(img, 0, 0x38, "H", 0xD800)  # lone surrogate in the name: a warning, not a crash
    t = _parse(img)
    assert "\ufffd" in t.partitions[0].name and any("UTF-16" in w for w in t.warnings)
