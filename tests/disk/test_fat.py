"""FAT12/16/32 used extents against dosfstools/mtools on volumes made by mkfs.vfat and filled by mtools.

Expected values come from the real tools: the used-cluster count from `fsck.fat -n -v` ("N/M clusters"),
type/serial/label from `blkid`, file bytes from `mcopy`. The strongest check rebuilds the volume from
the used extents alone (everything else zero) and has fsck.fat and mtools read it back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core.fs.fat import FatVolume, fat_usage, looks_like_fat, parse_fat_boot
from core.fs.probe import probe_usage
from core.extents import Extent, subtract_extents
from core.errors import FormatError
from core.io.reader import BytesReader, FdReader
from tests.conftest import need_root_tools

# (mkfs.vfat -F, size in MiB, extra mkfs options): FAT32 with 512-byte clusters keeps the file small.
VARIANTS = {"fat12": ("12", 8, []), "fat16": ("16", 64, []), "fat32": ("32", 48, ["-s", "1", "-S", "512"])}


def _open(path: Path) -> FdReader:
    fd = os.open(path, os.O_RDONLY)
    return FdReader(fd, os.fstat(fd).st_size, str(path))


def _m(img: Path, *args: str) -> None:
    subprocess.run([args[0], "-i", str(img), *args[1:]], check=True, capture_output=True)


def _fsck_used(img: Path) -> tuple[int, int]:
    out = subprocess.run(["fsck.fat", "-n", "-v", str(img)], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)/(\d+) clusters", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def _blkid(img: Path, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, str(img)], capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def volume(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, bytes]]:
    need_root_tools("mkfs.vfat", "mcopy", "mmd", "mdel", "fsck.fat", "blkid")
    kind = request.param
    bits, mib, extra = VARIANTS[kind]
    d = tmp_path_factory.mktemp(kind)
    img = d / "vol.img"
    with open(img, "wb") as f:
        f.truncate(mib * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", bits, "-n", "ESPTEST", *extra, str(img)], check=True,
                   capture_output=True)
    files: dict[str, bytes] = {}

    def put(name: str, data: bytes) -> None:
        src = d / "src.bin"
        src.write_bytes(data)
        _m(img, "mcopy", str(src), "::/" + name)
        files[name] = data

    _m(img, "mmd", "::/EFI", "::/EFI/Microsoft", "::/EFI/Microsoft/Boot", "::/many")
    put("EFI/Microsoft/Boot/BCD", os.urandom(24576))
    put("EFI/Microsoft/Boot/bootmgfw.efi", os.urandom(70000))
    put("A rather long file name.bin", os.urandom(9000))
    for i in range(120):  # a directory spanning several clusters, long names
        put(f"many/small file number {i}.txt", os.urandom(300 + i))
    put("gap1.bin", os.urandom(50000))
    put("gap2.bin", os.urandom(50000))
    put("gap3.bin", os.urandom(50000))
    _m(img, "mdel", "::/gap2.bin")  # deleted: its clusters are free again
    del files["gap2.bin"]
    if kind == "fat32":  # FSInfo next-free hint "unknown": mtools then searches from cluster 2
        with open(img, "r+b") as f:
            f.seek(512 + 492)
            f.write(b"\xff\xff\xff\xff")
    put("frag.bin", os.urandom(300000))  # fills gap2's hole first, then continues: fragmented
    return img, kind, files


def test_used_clusters_match_fsck(volume: tuple[Path, str, dict[str, bytes]]) -> None:
    img, kind, _ = volume
    u = probe_usage(_open(img))
    geo = FatVolume(_open(img)).geo
    assert u.fs == kind == _blkid(img, "TYPE").replace("vfat", kind) and u.cluster_size == geo.cluster_size
    used_fsck, total_fsck = _fsck_used(img)
    assert total_fsck == geo.clusters
    system = geo.data_offset
    assert u.used[0][0] == 0 and u.used[0][1] >= system
    data_bytes = sum(n for _, n in u.used) - system
    assert data_bytes == used_fsck * geo.cluster_size
    assert u.serial == _blkid(img, "UUID") and u.label == _blkid(img, "LABEL") == "ESPTEST"
    assert u.has_bootmgr and u.zeroed == [] and u.warnings == []


def test_file_bytes_lie_inside_used(volume: tuple[Path, str, dict[str, bytes]]) -> None:
    img, _, files = volume
    u = fat_usage(_open(img))
    cs = u.cluster_size
    data = img.read_bytes()
    aligned = FatVolume(_open(img)).geo.data_offset % cs
    for name in ("frag.bin", "gap3.bin", "EFI/Microsoft/Boot/BCD", "many/small file number 7.txt"):
        content = files[name]
        places = []
        for off in range(0, len(content), cs):  # every cluster of the (random, unique) content
            chunk = content[off:off + cs]
            where = data.find(chunk)
            assert where >= 0 and where % cs == aligned
            assert subtract_extents([(where, len(chunk))], u.used) == [], name
            places.append(where)
        if name == "frag.bin":  # it really is fragmented (filled the deleted file's hole first)
            assert any(b != a + cs for a, b in zip(places, places[1:]))


def test_used_extents_alone_rebuild_the_volume(volume: tuple[Path, str, dict[str, bytes]],
                                               tmp_path: Path) -> None:
    img, _, files = volume
    u = fat_usage(_open(img))
    copy = tmp_path / "restored.img"
    _restore(img, copy, u.used)
    assert subprocess.run(["fsck.fat", "-n", str(copy)], capture_output=True).returncode == 0
    for name in ("frag.bin", "A rather long file name.bin", "many/small file number 119.txt"):
        out = tmp_path / "out.bin"
        _m(copy, "mcopy", "-o", "::/" + name, str(out))
        assert out.read_bytes() == files[name]


def _restore(src: Path, dst: Path, used: list[Extent]) -> None:
    with open(src, "rb") as s, open(dst, "wb") as d:
        d.truncate(os.path.getsize(src))
        for off, n in used:
            s.seek(off)
            d.seek(off)
            d.write(s.read(n))


def test_lookup_long_and_short_names(volume: tuple[Path, str, dict[str, bytes]]) -> None:
    img, _, _ = volume
    vol = FatVolume(_open(img))
    assert vol.find_path("efi/microsoft/BOOT/bcd") is not None
    assert vol.find_path("A RATHER LONG FILE NAME.BIN") is not None
    assert vol.find_path("ARATHE~1.BIN") is not None  # the 8.3 alias mtools generated
    assert vol.find_path("many/Small File Number 99.TXT") is not None
    assert vol.find_path("gap2.bin") is None and vol.find_path("EFI/nothing/BCD") is None
    assert vol.find_path("frag.bin/x") is None  # a file is not a directory


def test_bad_cluster_kept_out(volume: tuple[Path, str, dict[str, bytes]], tmp_path: Path) -> None:
    img, kind, _ = volume
    geo = FatVolume(_open(img)).geo
    bad = tmp_path / "bad.img"
    shutil.copyfile(img, bad)
    n = geo.clusters - 3  # a free cluster near the end
    with open(bad, "r+b") as f:
        for k in range(geo.fats):
            fat = (geo.reserved_sectors + k * geo.fat_size) * geo.bytes_per_sector
            if kind == "fat12":
                f.seek(fat + n * 3 // 2)
                v = int.from_bytes(f.read(2), "little")
                v = (v & 0x000F) | (0xFF7 << 4) if n & 1 else (v & 0xF000) | 0xFF7
                f.seek(fat + n * 3 // 2)
                f.write(v.to_bytes(2, "little"))
            else:
                width = 2 if kind == "fat16" else 4
                f.seek(fat + n * width)
                f.write((0x0FFFFFF7 if width == 4 else 0xFFF7).to_bytes(width, "little"))
    before = sum(x for _, x in fat_usage(_open(img)).used)
    u = fat_usage(_open(bad))
    assert sum(x for _, x in u.used) == before  # the bad cluster is not imaged ...
    assert _fsck_used(bad)[0] == _fsck_used(img)[0] + 1  # ... though fsck.fat counts it as in use
    assert subtract_extents([(geo.cluster_offset(n), geo.cluster_size)], u.used) != []


def test_no_bootmgr_and_validation(tmp_path: Path) -> None:
    need_root_tools("mkfs.vfat")
    img = tmp_path / "plain.img"
    with open(img, "wb") as f:
        f.truncate(4 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", str(img)], check=True, capture_output=True)
    u = probe_usage(_open(img))
    assert u.fs == "fat12" and not u.has_bootmgr
    sector = img.read_bytes()[:512]
    assert looks_like_fat(sector, img.stat().st_size)
    with pytest.raises(FormatError, match="exceed the partition"):
        parse_fat_boot(sector, 1024 * 1024)
    broken = bytearray(sector)
    broken[0x0D] = 3  # sectors per cluster not a power of two
    assert not looks_like_fat(bytes(broken), img.stat().st_size)
    assert probe_usage(_open(img), type_id="0xef").fs == "fat12"


def test_probe_bitlocker_to_go_and_raw(volume: tuple[Path, str, dict[str, bytes]], tmp_path: Path) -> None:
    img, kind, _ = volume
    data = bytearray(img.read_bytes()[:1024 * 1024])
    # BitLocker To Go disguises itself as FAT ("MSWIN4.1"); its identifier GUID gives it away (libbde).
    data[3:11] = b"MSWIN4.1"
    data[0x1A8:0x1B8] = bytes.fromhex("3bd66749292ed84a8399f6a339e3d001")
    u = probe_usage(BytesReader(bytes(data)))
    assert u.fs == "bitlocker" and u.used == [(0, len(data))] and "sector by sector" in u.warnings[0]
    # Windows 7 BitLocker on an NTFS volume: "-FVE-FS-" OEM id.
    bde = bytearray(1024 * 1024)
    bde[0:11] = b"\xeb\x58\x90-FVE-FS-"
    bde[510:512] = b"\x55\xaa"
    u = probe_usage(BytesReader(bytes(bde)), type_id="0x07")
    assert u.fs == "bitlocker" and u.used == [(0, len(bde))] and "0x07" in u.warnings[0]
    # Nothing recognisable: the whole partition, no warning; an empty one: nothing.
    u = probe_usage(BytesReader(bytes(4096 * 3)))
    assert u.fs == "raw" and u.used == [(0, 4096 * 3)] and u.warnings == []
    assert probe_usage(BytesReader(b"")).used == []
