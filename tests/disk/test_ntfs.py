"""NTFS used-extent parsing against ntfs-3g: the real Windows sample and volumes built with mkntfs/ntfs-3g.

Expected values come from the real tools: the used-cluster set from `ntfscat ... '$Bitmap'`, the free
count from `ntfsinfo -m`, data runs from `ntfsinfo -v -F`, the dirty flag from `ntfsinfo -m`.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.fs.probe import probe_usage
from core.extents import Extent, merge_extents, subtract_extents
from core.fs.ntfs_boot import parse_ntfs_boot
from core.fs.ntfs_lookup import find_path
from core.fs.c_ntfs import AT_DATA
from core.fs.ntfs_usage import bitmap_runs, ntfs_usage
from core.fs.ntfs_volume import NtfsVolume, Stream
from core.errors import FormatError, UnsupportedError
from core.io.reader import BytesReader, FdReader
from tests.conftest import need_root_tools, shared_fixture
from tests.fuzz_targets import unfix as _logical

SECTOR = 512


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True).stdout.decode("latin-1")


def _open(path: Path) -> FdReader:
    fd = os.open(path, os.O_RDONLY)
    return FdReader(fd, os.fstat(fd).st_size, str(path))


def _bitmap_extents(image: Path, cluster: int) -> tuple[list[Extent], int]:
    """Used byte extents per ntfs-3g's own $Bitmap (decoded bit by bit), and the cluster count."""
    nr = int(re.search(r"Volume Size in Clusters: (\d+)", _run("ntfsinfo", "-m", str(image))).group(1))
    bm = subprocess.run(["ntfscat", str(image), "$Bitmap"], check=True, capture_output=True).stdout
    ext = [(n * cluster, cluster) for n in range(nr) if bm[n // 8] >> (n % 8) & 1]
    return merge_extents(ext), nr


def _free_clusters(image: Path) -> int:
    return int(re.search(r"Free Clusters: (\d+)", _run("ntfsinfo", "-m", str(image))).group(1))


def _ntfsinfo_runs(image: Path, path: str) -> list[tuple[int, int | None, int]]:
    """(VCN, LCN or None, length) of every $DATA extent as `ntfsinfo -v -F` prints them."""
    out = _run("ntfsinfo", "-v", "-F", path, str(image))
    runs: list[tuple[int, int | None, int]] = []
    in_data = False
    for line in out.splitlines():
        if line.startswith("Dumping attribute"):
            in_data = "$DATA" in line
        m = re.match(r"^\s+(0x[0-9a-f]+)\s+(\S+)\s+(0x[0-9a-f]+)\s*$", line)
        if in_data and m:
            lcn = int(m.group(2), 16) if m.group(2).startswith("0x") else None
            runs.append((int(m.group(1), 16), lcn, int(m.group(3), 16)))
    return sorted(runs)


def _extents_of(runs: list[tuple[int, int | None, int]], cluster: int) -> list[Extent]:
    return merge_extents([(lcn * cluster, n * cluster) for _, lcn, n in runs if lcn is not None])


# --- the real Windows-formatted sample --------------------------------------------------------------


@pytest.fixture(scope="module")
def dfvfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_fixture("ntfs/dfvfs_windows_volume.raw.gz")
    dst = tmp_path_factory.mktemp("dfvfs") / "windows_volume.raw"
    with gzip.open(src, "rb") as f, open(dst, "wb") as out:
        shutil.copyfileobj(f, out)
    return dst


def test_dfvfs_sample_matches_documented_values(dfvfs: Path) -> None:
    r = _open(dfvfs)
    vol = NtfsVolume(r)
    assert vol.boot.mft_lcn == 4 and vol.boot.nr_clusters == 8767 and vol.record_size == 1024
    s = vol.stream(vol.record(6), AT_DATA)
    assert isinstance(s, Stream) and [(x.lcn, x.length) for x in s.runs] == [(1103, 1)]
    assert s.data_size == 1096
    u = ntfs_usage(r)
    last = r.size - SECTOR
    assert (last, SECTOR) == u.used[-1]  # the backup boot sector, beyond the last cluster
    assert r.read(last, SECTOR) == r.read(0, SECTOR)
    assert (u.used_bytes - SECTOR) // 4096 == 638
    assert u.fs == "ntfs" and u.cluster_size == 4096 and not u.dirty and not u.hibernated
    assert u.zeroed == [] and not u.has_windows and not u.has_bootmgr


def test_dfvfs_sample_matches_ntfs3g(dfvfs: Path) -> None:
    need_root_tools("ntfscat", "ntfsinfo")
    bitmap, nr = _bitmap_extents(dfvfs, 4096)
    u = probe_usage(_open(dfvfs))
    assert u.used == merge_extents(bitmap + [(0, SECTOR), (dfvfs.stat().st_size - SECTOR, SECTOR)])
    assert nr - _free_clusters(dfvfs) == 638
    blkid = _run("blkid", "-p", "-o", "value", "-s", "UUID", str(dfvfs)).strip()
    assert u.serial == blkid
    vol = NtfsVolume(_open(dfvfs))
    assert find_path(vol, "WINDOWS") == 64 and find_path(vol, "windows/nothing") is None


def _patched_copy(src: Path, dst: Path, patch: dict[int, bytes]) -> Path:
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for off, data in patch.items():
            f.seek(off)
            f.write(data)
    return dst


def _attr_value_offset(rec: bytes, type_: int) -> int:
    """Offset of a resident attribute's value in a raw record (test-side walk of the attribute chain)."""
    off = int.from_bytes(rec[0x14:0x16], "little")
    while int.from_bytes(rec[off:off + 4], "little") != type_:
        off += int.from_bytes(rec[off + 4:off + 8], "little")
    return off + int.from_bytes(rec[off + 0x14:off + 0x16], "little")


def test_dirty_flag_as_ntfsinfo_sees_it(dfvfs: Path, tmp_path: Path) -> None:
    need_root_tools("ntfsinfo")
    rec3 = 4 * 4096 + 3 * 1024
    raw = dfvfs.read_bytes()[rec3:rec3 + 1024]
    flags_at = _attr_value_offset(raw, 0x70) + 10
    assert flags_at % 512 < 510  # not a fixup position: the record stays valid
    mirr3 = 4383 * 4096 + 3 * 1024  # $MFTMirr holds the same record: ntfs-3g compares them
    value = bytes([raw[flags_at] | 1])
    dirty = _patched_copy(dfvfs, tmp_path / "dirty.raw", {rec3 + flags_at: value, mirr3 + flags_at: value})
    assert "Volume Flags: 0x0001" in _run("ntfsinfo", "-f", "-m", str(dirty))
    u = ntfs_usage(_open(dirty))
    assert u.dirty and any("dirty" in w for w in u.warnings)
    # Only the $MFT copy changed: ntfs-3g refuses the volume, we image it and say why.
    torn = _patched_copy(dfvfs, tmp_path / "mirror.raw", {rec3 + flags_at: value})
    assert subprocess.run(["ntfsinfo", "-m", str(torn)], capture_output=True).returncode != 0
    u = ntfs_usage(_open(torn))
    assert u.dirty and any("$MFTMirr" in w for w in u.warnings)


def test_bad_fixup_names_the_record(dfvfs: Path, tmp_path: Path) -> None:
    rec6 = 4 * 4096 + 6 * 1024
    bad = _patched_copy(dfvfs, tmp_path / "badfixup.raw", {rec6 + 1022: b"\x00\x00"})
    with pytest.raises(FormatError, match="MFT record 6.*update sequence"):
        ntfs_usage(_open(bad))
    # probe_usage never fails the backup on bad metadata: it falls back to imaging every sector.
    u = probe_usage(_open(bad))
    assert u.fs == "raw" and u.used == [(0, bad.stat().st_size)] and "MFT record 6" in u.warnings[0]


def test_boot_sector_fields_validated(dfvfs: Path) -> None:
    sector = dfvfs.read_bytes()[:512]
    boot = parse_ntfs_boot(sector, dfvfs.stat().st_size)
    assert (boot.bytes_per_sector, boot.cluster_size, boot.index_block_size) == (512, 4096, 4096)
    with pytest.raises(FormatError, match="exceeds the partition"):
        parse_ntfs_boot(sector, dfvfs.stat().st_size - 4096)
    large = bytearray(sector)
    large[0x0D] = 0xF4  # 2**12 sectors of 512 = 2 MiB clusters (Windows 10 encoding)
    large[0x40] = large[0x44] = 0xF4  # 4 KiB records and index blocks, as Windows writes for big clusters
    large[0x28:0x30] = (1 << 30).to_bytes(8, "little")  # 512 GiB, so the MFT LCNs stay inside
    assert parse_ntfs_boot(bytes(large), 1 << 40).cluster_size == 2 * 1024 * 1024
    odd = bytearray(sector)
    odd[0x0B:0x0D] = (768).to_bytes(2, "little")
    with pytest.raises(FormatError, match="bytes per sector"):
        parse_ntfs_boot(bytes(odd), 1 << 40)


def test_bitmap_runs_fast_on_a_1tb_volume() -> None:
    # 32 MiB bitmap = 1 TiB of 4 KiB clusters: long used/free stretches, every byte value in between
    # (~300k runs in all; a bitmap of random bits would yield 64M runs, which no extent list can hold).
    block = b"\xff" * 300_000 + b"\x00" * 500_000 + bytes(range(256)) * 16 + b"\x0f" + b"\x00" * 100_000
    data = (block * (32 * 1024 * 1024 // len(block) + 1))[:32 * 1024 * 1024]
    pieces = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    t = time.process_time()
    runs = bitmap_runs(pieces, len(data) * 8, 4096)
    assert time.process_time() - t < 3.0
    assert sum(n for _, n in runs) == _popcount(data) * 4096
    assert all(a + n < b for (a, n), (b, _) in zip(runs, runs[1:]))  # sorted, merged, disjoint
    # exact on small cases, runs merged across pieces
    assert bitmap_runs([b"\x0f\xf0", b"\xff\x01"], 25) == [(0, 4), (12, 13)]
    assert bitmap_runs([b"\xff\xff"], 9) == [(0, 9)]  # bits past the volume end are ignored
    assert bitmap_runs([b"\x05"], 8, 512) == [(0, 512), (1024, 512)]


def _popcount(data: bytes) -> int:
    return int.from_bytes(data, "little").bit_count()


# --- volumes made by mkntfs and written through ntfs-3g ---------------------------------------------


def _populate(mnt: Path, cluster: int, hiber_head: bytes) -> None:
    (mnt / "Windows" / "System32").mkdir(parents=True)
    (mnt / "Windows" / "System32" / "winload.exe").write_bytes(os.urandom(30000))
    (mnt / "bootmgr").write_bytes(os.urandom(5000))
    (mnt / "Boot").mkdir()
    (mnt / "Boot" / "BCD").write_bytes(os.urandom(8192))
    for i in range(300):  # enough names that the root index needs INDX blocks
        (mnt / f"file{i:03d}.txt").write_bytes(os.urandom(100 + i))
    (mnt / "many").mkdir()
    for i in range(200):
        (mnt / "many" / f"small{i}").write_bytes(os.urandom(2000))
    (mnt / "deleted.bin").write_bytes(os.urandom(200_000))
    os.unlink(mnt / "deleted.bin")
    (mnt / "pagefile.sys").write_bytes(os.urandom(2 * 1024 * 1024))
    (mnt / "hiberfil.sys").write_bytes(hiber_head + os.urandom(1024 * 1024 - len(hiber_head)))
    # A fragmented file: fill the volume, free every other small file, write into the holes.
    st = os.statvfs(mnt)
    (mnt / "filler").write_bytes(b"\x01" * (st.f_bavail * st.f_frsize - 2 * 1024 * 1024))
    small = max(cluster, 4096)
    made = 0
    try:
        while made < 2000:  # bounded: the volume fills after ~2 MiB / small files
            (mnt / f"hole{made}").write_bytes(os.urandom(small))
            made += 1
    except OSError:
        pass
    for i in range(0, made, 2):
        os.unlink(mnt / f"hole{i}")
    st = os.statvfs(mnt)
    (mnt / "frag.bin").write_bytes(os.urandom(st.f_bavail * st.f_frsize * 3 // 4))


@pytest.fixture(scope="module", params=[(4096, 64, b"hibr"), (512, 32, b"\0\0\0\0"), (65536, 128, b"HIBR")],
                ids=["c4096", "c512", "c65536"])
def built(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, bool]]:
    need_root_tools("mkntfs", "ntfs-3g", "losetup", "ntfscat", "ntfsinfo")
    cluster, mib, head = request.param
    d = tmp_path_factory.mktemp(f"ntfs{cluster}")
    img = d / "vol.img"
    with open(img, "wb") as f:  # sparse, with a size that is not a whole number of clusters
        f.truncate(mib * 1024 * 1024 + 7 * SECTOR)
    subprocess.run(["mkntfs", "-F", "-f", "-Q", "-c", str(cluster), "-L", f"Vol{cluster}", str(img)],
                   check=True, capture_output=True)
    mnt = d / "mnt"
    mnt.mkdir()
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True, capture_output=True,
                          text=True).stdout.strip()
    mounted = False
    try:
        subprocess.run(["ntfs-3g", loop, str(mnt)], check=True, capture_output=True)
        mounted = True
        _populate(mnt, cluster, head)
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)
        subprocess.run(["losetup", "-d", loop], check=True)
    yield img, cluster, head.lower() == b"hibr"


def test_built_volume_matches_ntfs3g_bitmap(built: tuple[Path, int, bool]) -> None:
    img, cluster, hibernated = built
    bitmap, nr = _bitmap_extents(img, cluster)
    size = img.stat().st_size
    backup = ((size // SECTOR - 1) * SECTOR, SECTOR)
    page = _extents_of(_ntfsinfo_runs(img, "/pagefile.sys"), cluster)
    hiber = _extents_of(_ntfsinfo_runs(img, "/hiberfil.sys"), cluster)
    u = probe_usage(_open(img))
    assert u.fs == "ntfs" and u.cluster_size == cluster and u.label == f"Vol{cluster}"
    assert u.hibernated == hibernated
    assert u.has_windows and u.has_bootmgr and not u.dirty
    # Exactly ntfs-3g's $Bitmap (+ boot sectors), with the volatile files' runs moved to `zeroed`.
    expect_zeroed = merge_extents(page + ([] if hibernated else hiber))
    assert u.zeroed == expect_zeroed
    assert merge_extents(u.used + u.zeroed) == merge_extents(bitmap + [(0, SECTOR), backup])
    assert subtract_extents(u.used, u.zeroed) == u.used  # disjoint
    in_clusters = subtract_extents(merge_extents(u.used + u.zeroed), [backup])
    used_clusters = sum(n for _, n in in_clusters) // cluster
    assert used_clusters + _free_clusters(img) == nr
    if hibernated:
        assert any("hibernated" in w for w in u.warnings)
        assert subtract_extents(hiber, u.used) == []  # a hibernated session is imaged in full
    # keep_volatile: everything in the bitmap is stored.
    k = probe_usage(_open(img), keep_volatile=True)
    assert k.zeroed == [] and k.used == merge_extents(bitmap + [(0, SECTOR), backup])


def test_built_volume_runlists_and_lookup(built: tuple[Path, int, bool]) -> None:
    img, cluster, _ = built
    vol = NtfsVolume(_open(img))
    n = find_path(vol, "frag.bin")
    assert n is not None
    s = vol.stream(vol.record(n), AT_DATA)
    assert isinstance(s, Stream)
    ours = [(r.vcn, r.lcn, r.length) for r in s.runs]
    assert ours == _ntfsinfo_runs(img, "/frag.bin") and len(ours) > 10  # fragmented
    assert find_path(vol, "WINDOWS\\system32\\WINLOAD.EXE") is not None
    assert find_path(vol, "Windows/System32/winload.exe") == find_path(vol, "windows/SYSTEM32/winload.exe")
    assert find_path(vol, "deleted.bin") is None and find_path(vol, "Windows/nothing.exe") is None
    assert find_path(vol, "bootmgr/BCD") is None  # a file is not a directory
    for i in (0, 150, 299):
        m = find_path(vol, f"FILE{i:03d}.TXT")
        assert m is not None and vol.record(m).in_use
    assert all(find_path(vol, f"many/small{i}") is not None for i in (0, 99, 199))


def test_fragmented_file_with_attribute_list(built: tuple[Path, int, bool]) -> None:
    img, cluster, _ = built
    info = _run("ntfsinfo", "-v", "-F", "/frag.bin", str(img))
    vol = NtfsVolume(_open(img))
    rec = vol.record(find_path(vol, "frag.bin") or 0)
    has_list = "$ATTRIBUTE_LIST" in info
    assert any(a.type == 0x20 for a in rec.attributes) == has_list
    if has_list:  # extents in extension records are merged into one runlist
        assert len(vol.attributes(rec, AT_DATA)) > 1
    s = vol.stream(rec, AT_DATA)
    assert isinstance(s, Stream)
    # The content read through our merged runlist equals what ntfs-3g reads.
    content = subprocess.run(["ntfscat", str(img), "/frag.bin"], check=True, capture_output=True).stdout
    assert s.data_size == len(content)
    assert b"".join(vol.iter_stream(s, s.data_size)) == content


def test_used_extents_alone_rebuild_the_volume(built: tuple[Path, int, bool], tmp_path: Path) -> None:
    img, cluster, hibernated = built
    u = probe_usage(_open(img))
    copy = tmp_path / "restored.img"
    with open(img, "rb") as s, open(copy, "wb") as d:  # used copied, zeroed and free left as zeros
        d.truncate(img.stat().st_size)
        for off, n in u.used:
            s.seek(off)
            d.seek(off)
            d.write(s.read(n))
    assert "Volume Size in Clusters" in _run("ntfsinfo", "-m", str(copy))
    for name in ("/frag.bin", "/Windows/System32/winload.exe", "/many/small150", "/Boot/BCD"):
        assert _run("ntfscat", str(copy), name) == _run("ntfscat", str(img), name)
    page = subprocess.run(["ntfscat", str(copy), "/pagefile.sys"], check=True, capture_output=True).stdout
    assert len(page) == 2 * 1024 * 1024 and page == bytes(len(page))  # restored as zeros
    hiber = subprocess.run(["ntfscat", str(copy), "/hiberfil.sys"], check=True, capture_output=True).stdout
    assert hiber[:4].lower() == (b"hibr" if hibernated else b"\0\0\0\0")


# --- a fragmented $MFT whose runlist continues in an extension record ------------------------------

def _protect(buf: bytearray) -> bytes:
    usa = int.from_bytes(buf[4:6], "little")
    usn = (int.from_bytes(buf[usa:usa + 2], "little") + 1).to_bytes(2, "little")
    buf[usa:usa + 2] = usn
    for i in range(len(buf) // 512):
        end = (i + 1) * 512
        buf[usa + 2 * (i + 1):usa + 2 * (i + 2)] = buf[end - 2:end]
        buf[end - 2:end] = usn
    return bytes(buf)


def _nonresident_data(lowest: int, highest: int, lcn: int, instance: int,
                      sizes: tuple[int, int, int]) -> bytes:
    pairs = bytes([0x11, highest - lowest + 1, lcn, 0])  # one run: 1-byte length, 1-byte LCN
    length = (0x40 + len(pairs) + 7) // 8 * 8
    head = (0x80).to_bytes(4, "little") + length.to_bytes(4, "little") + bytes([1, 0])
    head += (0x40).to_bytes(2, "little")
    head += (0).to_bytes(2, "little") + instance.to_bytes(2, "little")
    head += lowest.to_bytes(8, "little") + highest.to_bytes(8, "little")
    head += (0x40).to_bytes(2, "little") + bytes(6)
    head += b"".join(v.to_bytes(8, "little") for v in sizes)
    return (head + pairs).ljust(length, b"\0")


def _split_mft(src: bytes, ext_record: int) -> bytes:
    """The sample with $MFT's $DATA (19 clusters at LCN 4) split: VCN 0-7 in record 0, VCN 8-18 in
    ``ext_record``, tied together by an $ATTRIBUTE_LIST in record 0 (as Windows does when the $MFT
    fragments beyond what one record holds)."""
    img = bytearray(src)
    mft, mirr = 4 * 4096, 4383 * 4096
    rec0 = _logical(img[mft:mft + 1024])
    attrs: dict[int, bytes] = {}
    off = int.from_bytes(rec0[0x14:0x16], "little")
    while (t := int.from_bytes(rec0[off:off + 4], "little")) != 0xFFFFFFFF:
        n = int.from_bytes(rec0[off + 4:off + 8], "little")
        attrs[t] = bytes(rec0[off:off + n])
        off += n
    sizes = (19 * 4096, 17 * 4096, 17 * 4096)  # allocated, data, initialized: unchanged
    attrs[0x80] = _nonresident_data(0, 7, 4, 1, sizes)
    seq0 = int.from_bytes(rec0[0x10:0x12], "little")
    entries = b""
    for t, a in sorted(attrs.items()):  # list entries: type, length 32, no name, lowest VCN, ref, instance
        ref = 0 | seq0 << 48
        entries += t.to_bytes(4, "little") + (32).to_bytes(2, "little") + bytes([0, 26]) + bytes(8)
        entries += ref.to_bytes(8, "little") + a[0x0E:0x10] + bytes(6)
        if t == 0x80:
            entries += t.to_bytes(4, "little") + (32).to_bytes(2, "little") + bytes([0, 26])
            entries += (8).to_bytes(8, "little") + (ext_record | 1 << 48).to_bytes(8, "little") + bytes(8)
    lst = (0x20).to_bytes(4, "little") + (24 + len(entries)).to_bytes(4, "little") + bytes([0, 0, 0, 0, 0, 0])
    lst += (9).to_bytes(2, "little") + len(entries).to_bytes(4, "little")
    lst += (24).to_bytes(2, "little") + bytes(2)
    attrs[0x20] = lst + entries
    body = b"".join(a for _, a in sorted(attrs.items())) + b"\xff\xff\xff\xff"
    first = int.from_bytes(rec0[0x14:0x16], "little")
    rec0[first:] = (body + bytes(1024))[:1024 - first]
    rec0[0x18:0x1C] = (first + len(body) + 4).to_bytes(4, "little")
    rec0[0x28:0x2A] = (10).to_bytes(2, "little")
    new0 = _protect(rec0)
    img[mft:mft + 1024] = new0
    img[mirr:mirr + 1024] = new0  # $MFTMirr mirrors record 0
    ext = bytearray(1024)
    ext[0:4] = b"FILE"
    ext[4:6], ext[6:8] = (0x30).to_bytes(2, "little"), (3).to_bytes(2, "little")
    ext[0x10:0x12], ext[0x14:0x16], ext[0x16:0x18] = b"\x01\x00", (0x38).to_bytes(2, "little"), b"\x01\x00"
    data_attr = _nonresident_data(8, 18, 12, 0, (0, 0, 0))
    ext[0x18:0x1C] = (0x38 + len(data_attr) + 8).to_bytes(4, "little")
    ext[0x1C:0x20] = (1024).to_bytes(4, "little")
    ext[0x20:0x28] = (0 | seq0 << 48).to_bytes(8, "little")
    ext[0x28:0x2A] = b"\x01\x00"
    ext[0x2C:0x30] = ext_record.to_bytes(4, "little")
    ext[0x38:0x38 + len(data_attr)] = data_attr
    ext[0x38 + len(data_attr):0x38 + len(data_attr) + 4] = b"\xff\xff\xff\xff"
    img[mft + ext_record * 1024:mft + ext_record * 1024 + 1024] = _protect(ext)
    return bytes(img)


def test_fragmented_mft_through_extension_record(dfvfs: Path, tmp_path: Path) -> None:
    split = tmp_path / "split.raw"
    split.write_bytes(_split_mft(dfvfs.read_bytes(), 24))
    vol = NtfsVolume(_open(split))
    assert [(r.vcn, r.lcn, r.length) for r in vol.mft.runs] == [(0, 4, 8), (8, 12, 11)]
    assert vol.record_count == 68
    u = ntfs_usage(_open(split))
    assert u.used == ntfs_usage(_open(dfvfs)).used  # records beyond VCN 8 (e.g. 64, "Windows") still read
    assert find_path(vol, "Windows") == 64
    need_root_tools("ntfsinfo")
    info = _run("ntfsinfo", "-v", "-i", "0", str(split))  # ntfs-3g reads the same split runlist
    assert "$ATTRIBUTE_LIST" in info and re.search(r"0x8\s+0xc\s+0xb", info)


def test_mft_extension_beyond_mapped_part_is_unsupported(dfvfs: Path) -> None:
    # Record 40 lies at VCN 10, past the 8 clusters record 0 maps: no way to read it.
    with pytest.raises(UnsupportedError, match="extension record 40"):
        NtfsVolume(BytesReader(_split_mft(dfvfs.read_bytes(), 40)))
