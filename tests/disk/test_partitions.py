"""read_partition_table: GPT/MBR detection and the refusals (blank disk, whole-disk filesystem, no pMBR)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

try:  # tests/disk may become a package; the helpers are a sibling module either way
    from .pt_testutil import MiB, apply, make_disk, need, parse_file, sfdisk_json
except ImportError:
    from pt_testutil import MiB, apply, make_disk, need, parse_file, sfdisk_json

from core.partition.c_gpt import GPT_ENTRY, GPT_HEADER
from core.partition.c_mbr import MBR_ENTRY, MBR_SECTOR
from core.partition.detect import read_partition_table
from core.errors import Error, FormatError, UsageError
from core.io.reader import BytesReader


def test_detects_mbr_and_gpt(tmp_path: Path) -> None:
    m = make_disk(tmp_path / "m.img", 64 * MiB, "label: dos\nsize=10M, type=7\n")
    g = make_disk(tmp_path / "g.img", 64 * MiB, "label: gpt\nsize=10M\n")
    tm, tg = parse_file(m), parse_file(g)
    assert tm.scheme == "mbr" and tm.disk_id == sfdisk_json(m)["id"]
    assert tg.scheme == "gpt" and tg.disk_id == sfdisk_json(g)["id"].lower()
    assert [p.start for p in tg.partitions] == [p["start"] * 512 for p in sfdisk_json(g)["partitions"]]


def test_empty_mbr_is_a_table_without_partitions(tmp_path: Path) -> None:
    path = make_disk(tmp_path / "e.img", 16 * MiB, "label: dos\nlabel-id: 0x0badcafe\n")
    t = parse_file(path)
    assert (t.scheme, t.disk_id, t.partitions, t.extended) == ("mbr", "0x0badcafe", (), None)


def test_blank_and_tiny_disks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no partition table"):
        parse_file(apply(tmp_path / "blank.img", 16 * MiB, []))
    with pytest.raises(FormatError, match="no sector 0"):
        read_partition_table(BytesReader(b"\x55\xaa"), 512)
    with pytest.raises(UsageError, match="sector size"):
        read_partition_table(BytesReader(bytes(4096)), 520)


def test_whole_disk_filesystem_is_not_a_table(tmp_path: Path) -> None:
    need("mkfs.vfat", "mkntfs")
    fat = apply(tmp_path / "fat.img", 64 * MiB, [])
    subprocess.run(["mkfs.vfat", "-F", "32", str(fat)], check=True, capture_output=True)
    with pytest.raises(FormatError, match="FAT32 boot sector"):
        parse_file(fat)
    ntfs = apply(tmp_path / "ntfs.img", 16 * MiB, [])
    subprocess.run(["mkntfs", "-Q", "-F", "-q", str(ntfs)], check=True, capture_output=True)
    with pytest.raises(FormatError, match="NTFS boot sector"):
        parse_file(ntfs)


def test_gpt_without_protective_mbr(tmp_path: Path) -> None:
    path = make_disk(tmp_path / "g.img", 64 * MiB, "label: gpt\nsize=10M\n")
    with open(path, "r+b") as f:
        f.write(bytes(512))
    with pytest.raises(FormatError, match="GPT header is at LBA 1 but sector 0 has no protective MBR"):
        parse_file(path)


def test_hybrid_mbr_warns(tmp_path: Path) -> None:
    need("sgdisk")
    path = make_disk(tmp_path / "g.img", 64 * MiB, "label: gpt\nsize=10M\nsize=10M\n")
    subprocess.run(["sgdisk", "-h", "1", str(path)], check=True, capture_output=True)
    t = parse_file(path)
    assert t.scheme == "gpt" and len(t.partitions) == 2
    assert any("hybrid MBR" in w for w in t.warnings)


def test_enlarged_disk_keeps_backup_where_it_is(tmp_path: Path) -> None:
    # A GPT disk dd'ed onto a bigger one: the backup sits at the old end; report it, don't fail.
    path = make_disk(tmp_path / "g.img", 64 * MiB, "label: gpt\nsize=10M\n")
    with open(path, "r+b") as f:
        f.truncate(128 * MiB)
    t = parse_file(path)
    assert any("not at the last LBA" in w for w in t.warnings)
    backup = [m for m in t.meta if m.role == "gpt-backup"]
    assert backup[-1].offset + backup[-1].length == 64 * MiB


def test_truncated_gpt_image_is_a_format_error(tmp_path: Path) -> None:
    # An image cut short (copy aborted): usable LBAs run past the end; only FormatError may escape.
    path = make_disk(tmp_path / "g.img", 64 * MiB, "label: gpt\nsize=10M\n")
    with open(path, "r+b") as f:
        f.truncate(32 * MiB)
    with pytest.raises(Error) as info:
        parse_file(path)
    assert isinstance(info.value, FormatError) and "both invalid" in str(info.value)


REFERENCE = Path(__file__).resolve().parents[2] / "BOOT.md"


def _reference_table(heading: str) -> list[tuple[int, int]]:
    """(offset, size) rows of the first table after ``heading`` in BOOT.md."""
    text = REFERENCE.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        m = re.match(r"\|\s*(0x[0-9A-Fa-f]+)\s*\|\s*([0-9×]+)\s*\|", line)
        if m:
            size = 1
            for factor in m.group(2).split("×"):
                size *= int(factor)
            rows.append((int(m.group(1), 16), size))
        elif rows:
            break
    return rows


def test_struct_tables_match_reference() -> None:
    # The declared field tables and BOOT.md's byte tables must not drift apart: a documented layout
    # that no longer matches the code would mislead the next reader.
    for heading, table in [("### 2.1 Sector 0 layout", MBR_SECTOR), ("### 3.2 GPT header", GPT_HEADER)]:
        assert _reference_table(heading) == [table.offsets[name] for name, _ in table.fields], heading
    assert GPT_ENTRY.size == 128 and [GPT_ENTRY.offsets[n][0] for n, _ in GPT_ENTRY.fields] == [
        0x00, 0x10, 0x20, 0x28, 0x30, 0x38]  # BOOT.md §3.3: type GUID ... name
    assert MBR_ENTRY.size == 16 and MBR_ENTRY.offsets["type"][0] == 4 and MBR_ENTRY.offsets["lba_start"][0] == 8
