"""The parsers under hostile input, as byte-in targets: shared by bench/fuzz.py (coverage-guided, a
million inputs each, not in CI) and tests/test_fuzz_corpus.py (every input kept in tests/fuzz_corpus/,
replayed in CI).

Each target takes one input (bytes) and feeds it to a parser the way a hostile disk or image would
reach it; the only exception allowed out is our own `core.errors.Error`. Inputs are small (a sector,
an MFT record, an index block, the head of a disk or FAT volume, a hive, a manifest): a few targets
place them into a base volume made here with mkntfs (``ntfs_base``), so the code behind the record
or block (the volume's usage, directory lookups) is reached too. Checksums and digests that would
stop nearly every mutation at the door (fixups, hive checksum, manifest digests) are recomputed.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import blake3

from core.bcd.device import decode_element
from core.bcd.mounteddevices import decode_mounted
from core.bcd.store import decode_element_value
from core.errors import Error
from core.format import manifest as mf
from core.format.image_meta import ImageMeta
from core.fs.c_ntfs import AT_INDEX_ALLOCATION
from core.fs.fat import fat_usage, parse_fat_boot
from core.fs.ntfs_boot import parse_ntfs_boot
from core.fs.ntfs_lookup import find_path, iter_directory
from core.fs.ntfs_mft import Attribute, decode_runlist, parse_record
from core.fs.ntfs_usage import ntfs_usage
from core.fs.ntfs_volume import NtfsVolume, Stream
from core.io.reader import BytesReader
from core.partition.detect import read_partition_table
from core.regf.new import new_hive
from core.regf.values import RegType
from core.regf.writer import HiveWriter
from tests.regf.test_regf_fuzz import exercise

MiB = 1 << 20
DISK_SIZE = 4 * MiB  # the disk a partition-table input heads (the rest reads as zeros)
FAT_SIZE = 8 * MiB  # the partition a FAT input heads (FAT12 and FAT16; FAT32 needs 33 MiB and more)
MFT_RECORDS = (0, 1, 3, 5, 6, 11, 64)  # $MFT, $MFTMirr, $Volume, root, $Bitmap, $Extend, a file
_ID_RE = re.compile(rb"\d{8}-\d{6}-[0-9a-f]{6}")


def _image_id(data: bytes) -> str:
    """The image id the input names (volume names carry it), so the seed is accepted as it is."""
    m = _ID_RE.search(data)
    return m.group().decode() if m else "20260101-000000-000000"


class PaddedReader:
    """A `Reader` of ``size`` bytes: ``data`` at the start, zeros after (no big copy per input)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data[:size]
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        out = self.data[offset:offset + length]
        return out + bytes(length - len(out))


class PatchedReader:
    """A `Reader` over base bytes with one range replaced."""

    def __init__(self, base: bytes, at: int, patch: bytes) -> None:
        self.base, self.at, self.patch = base, at, patch
        self.size = len(base)

    def read(self, offset: int, length: int) -> bytes:
        data = self.base[offset:offset + length]
        lo, hi = max(offset, self.at), min(offset + len(data), self.at + len(self.patch))
        if lo >= hi:
            return data
        return data[:lo - offset] + self.patch[lo - self.at:hi - self.at] + data[hi - offset:]


def refix(logical: bytes | bytearray) -> bytes:
    """Protect a record's logical bytes with its update sequence array (whatever the input put there),
    so the parsers behind the fixup check are reached; an impossible array is left for them to refuse."""
    buf = bytearray(logical)
    if len(buf) < 512:
        return bytes(buf)
    usa = int.from_bytes(buf[4:6], "little")
    count = len(buf) // 512
    if usa + 2 * (count + 1) > len(buf) or usa & 1:
        return bytes(buf)
    usn = buf[usa:usa + 2]
    for i in range(count):
        end = (i + 1) * 512
        buf[usa + 2 * (i + 1):usa + 2 * (i + 2)] = buf[end - 2:end]
        buf[end - 2:end] = usn
    return bytes(buf)


def unfix(raw: bytes) -> bytearray:
    """The logical bytes of a fixed-up block (seeds; the fuzz tests mutate them in place)."""
    buf = bytearray(raw)
    usa = int.from_bytes(buf[4:6], "little")
    for i in range(len(buf) // 512):
        buf[(i + 1) * 512 - 2:(i + 1) * 512] = buf[usa + 2 * (i + 1):usa + 2 * (i + 2)]
    return buf


@lru_cache(maxsize=None)
def ntfs_base() -> bytes:
    from tests.images import ntfs_volume  # needs mkntfs: only the NTFS targets pay for it
    return ntfs_volume(1)


@lru_cache(maxsize=None)
def _ntfs_layout() -> tuple[int, int]:
    """(byte offset of the $MFT, of the root directory's first index block) in the base volume."""
    vol = NtfsVolume(BytesReader(ntfs_base()))
    alloc = vol.stream(vol.record(5), AT_INDEX_ALLOCATION, "$I30")
    assert isinstance(alloc, Stream) and alloc.runs[0].lcn is not None
    return vol.boot.mft_lcn * vol.cs, alloc.runs[0].lcn * vol.cs


def _ntfs_walk(reader: PatchedReader) -> None:
    ntfs_usage(reader)
    vol = NtfsVolume(reader)
    find_path(vol, "notes.txt")
    list(iter_directory(vol, 5))


# --- the targets: each raises only Error ------------------------------------------------------------


def t_partition(data: bytes) -> None:
    read_partition_table(PaddedReader(data, DISK_SIZE), 512)


def t_ntfs_boot(data: bytes) -> None:
    sector = data[:512].ljust(512, b"\0")
    base = ntfs_base()
    parse_ntfs_boot(sector, len(base))
    ntfs_usage(PatchedReader(base, 0, sector))


def t_mft_record(data: bytes) -> None:
    if not data:
        return
    number = MFT_RECORDS[data[0] % len(MFT_RECORDS)]
    record = refix(data[1:1025].ljust(1024, b"\0"))
    parse_record(record, number)
    mft, _ = _ntfs_layout()
    _ntfs_walk(PatchedReader(ntfs_base(), mft + number * 1024, record))


def t_runlist(data: bytes) -> None:
    highest = int.from_bytes(data[:5], "little", signed=True)
    nr_clusters = int.from_bytes(data[5:8], "little")
    attr = Attribute(type=0x80, name="", flags=0, instance=0, non_resident=True, lowest_vcn=0,
                     highest_vcn=highest, mapping_pairs=data[8:])
    for run in decode_runlist(attr, nr_clusters, "fuzz runlist"):
        if run.lcn is not None and not (0 <= run.lcn and run.lcn + run.length <= nr_clusters):
            raise AssertionError(f"run {run} outside the volume's {nr_clusters} clusters")


def t_ntfs_index(data: bytes) -> None:
    _, at = _ntfs_layout()
    # Only the lookups read directory indexes (the volume's usage does not: 20x slower for nothing).
    vol = NtfsVolume(PatchedReader(ntfs_base(), at, refix(data[:4096].ljust(4096, b"\0"))))
    find_path(vol, "notes.txt")
    list(iter_directory(vol, 5))


def t_fat(data: bytes) -> None:
    try:
        parse_fat_boot(data[:512].ljust(512, b"\0"), FAT_SIZE)
    except Error:
        pass
    fat_usage(PaddedReader(data, FAT_SIZE))


def t_regf(data: bytes) -> None:
    exercise(data)  # open, walk, read every value, check, edit: the regf fuzz test's sequence


def t_bcd(data: bytes) -> None:
    if len(data) < 5:
        return
    code = int.from_bytes(data[:4], "little")
    reg_type = (RegType.BINARY, RegType.SZ, RegType.MULTI_SZ)[data[4] % 3]
    decode_element_value(code, reg_type, data[5:])
    try:
        decode_element(data[5:])
    except Error:
        pass
    decode_mounted(data[5:])


def t_manifest(data: bytes) -> None:
    buf = bytearray(data)
    if len(buf) >= 160:  # header digest and tail digest recomputed: reach the sections behind them
        buf[96:128] = blake3.blake3(bytes(buf[:96])).digest()
        try:
            buf[-32:] = mf.tail_digest(bytes(buf))
        except Error:
            pass
    with tempfile.NamedTemporaryFile(prefix="fuzz-", suffix=".manifest") as f:
        f.write(buf)
        f.flush()
        m = mf.read_file(f.name, _image_id(data))
        m.summary
        mf.open_manifest(m, lambda: None)


def t_image_meta(data: bytes) -> None:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return  # not JSON: the manifest reader refuses it before ImageMeta (t_manifest covers that)
    ImageMeta.from_json(value, _image_id(data), "fuzz.manifest")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "partition": t_partition, "ntfs_boot": t_ntfs_boot, "mft_record": t_mft_record, "runlist": t_runlist,
    "ntfs_index": t_ntfs_index, "fat": t_fat, "regf": t_regf, "bcd": t_bcd, "manifest": t_manifest,
    "image_meta": t_image_meta,
}


def run(target: str, data: bytes) -> None:
    """One input through one target; our errors are the parsers' answer, anything else escapes."""
    try:
        TARGETS[target](data)
    except Error:
        pass


# --- seeds: valid inputs the fuzzer starts from (made with the real tools) ----------------------------


def _disk_head(script: str, tool: list[str] | None, work: Path, name: str, head: int) -> bytes:
    img = work / name
    with open(img, "wb") as f:
        f.truncate(DISK_SIZE)
    if tool is None:
        subprocess.run(["sfdisk", "-q", str(img)], input=script, text=True, check=True, capture_output=True)
    else:
        subprocess.run(tool + [str(img)], check=True, capture_output=True)
    return img.read_bytes()[:head]


def seeds(target: str) -> list[bytes]:
    """Valid inputs for ``target`` (tools: sfdisk, sgdisk, mkntfs, mkfs.vfat)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as tmp:
        work = Path(tmp)
        if target == "partition":
            mbr = ("label: dos\nlabel-id: 0x2468ace0\nstart=8, size=8, type=7, bootable\n"
                   "start=16, size=64, type=5\nstart=18, size=6, type=7\nstart=26, size=6, type=83\n")
            gpt = ["sgdisk", "-a", "1", "-n", "1:40:+64", "-t", "1:ef00", "-c", "1:EFI", "-n", "2:104:+64",
                   "-t", "2:0700", "-c", "2:Windows"]
            return [_disk_head(mbr, None, work, "m.img", 40 * 512),
                    _disk_head("", gpt, work, "g.img", 40 * 512)]
        if target == "ntfs_boot":
            return [ntfs_base()[:512]]
        if target == "mft_record":
            mft, _ = _ntfs_layout()
            base = ntfs_base()
            return [bytes([i]) + unfix(base[mft + n * 1024:mft + (n + 1) * 1024])
                    for i, n in enumerate(MFT_RECORDS)]
        if target == "runlist":
            base = ntfs_base()
            vol = NtfsVolume(BytesReader(base))
            rec = vol.record(0)
            attr = next(a for a in rec.attributes if a.non_resident and a.type == 0x80)
            return [attr.highest_vcn.to_bytes(5, "little", signed=True)
                    + (vol.boot.nr_clusters % (1 << 24)).to_bytes(3, "little") + attr.mapping_pairs]
        if target == "ntfs_index":
            _, at = _ntfs_layout()
            return [bytes(unfix(ntfs_base()[at:at + 4096]))]
        if target == "fat":
            out = []
            for bits, spc in (("12", "8"), ("16", "2")):
                img = work / f"fat{bits}.img"
                with open(img, "wb") as f:
                    f.truncate(FAT_SIZE)
                for cmd in (["mkfs.vfat", "-F", bits, "-s", spc, str(img)],
                            ["mmd", "-i", str(img), "::/EFI", "::/EFI/Boot"]):
                    subprocess.run(cmd, check=True, capture_output=True)
                (work / "BCD").write_bytes(b"x" * 5000)
                subprocess.run(["mcopy", "-i", str(img), str(work / "BCD"), "::/EFI/Boot/BCD"], check=True,
                               capture_output=True)
                raw = img.read_bytes()
                geo = parse_fat_boot(raw[:512], FAT_SIZE)
                end = max(o + n for o, n in fat_usage(BytesReader(raw)).used)
                out.append(raw[:min(end, geo.data_offset + 64 * 1024)].rstrip(b"\0") or raw[:512])
            return out
        if target == "regf":
            w = HiveWriter(new_hive("ROOT"))
            k = w.add_key(w.hive.root, "Objects")
            w.set_value(k, "Element", RegType.BINARY, bytes(range(64)))
            w.set_value(k, "Text", RegType.SZ, "\\Windows\\system32\\winload.exe")
            w.set_value(k, "List", RegType.MULTI_SZ, ["{a}", "{b}"])
            return [w.commit()]
        if target == "bcd":
            return [struct.pack("<I", 0x11000001) + b"\0" + bytes(88), struct.pack("<I", 0x12000002) + b"\1"
                    + "\\Windows\\system32\\winload.exe\0".encode("utf-16-le"),
                    struct.pack("<I", 0x25000004) + b"\0" + (30).to_bytes(8, "little"),
                    b"\0" * 5 + bytes.fromhex("12345678") + (1 << 20).to_bytes(8, "little")]
        if target in ("manifest", "image_meta"):
            return [_manifest_seed(work, target)]
    raise KeyError(target)


def _manifest_seed(work: Path, target: str) -> bytes:
    from core.engine.backup import BackupOptions, backup
    from core.engine.repo import Repository
    from core.progress import Progress
    src = work / "tiny.img"
    data = bytearray(1 << 20)
    data[:200_000] = (b"The quick brown fox. " * 10_000)[:200_000]
    src.write_bytes(bytes(data))
    image_id = backup(str(src), str(work / "bk"), BackupOptions(), Progress()).image_id
    raw = (work / "bk" / f"{image_id}.manifest").read_bytes()
    if target == "manifest":
        return raw
    m = Repository(str(work / "bk")).load(image_id, lambda: None)
    return json.dumps(m.meta.to_json()).encode()


def corpus_dir(root: Path, target: str) -> Path:
    return root / "tests" / "fuzz_corpus" / target


if __name__ == "__main__":  # a quick self-check of the seeds: python -m tests.fuzz_targets
    for name in TARGETS:
        for s in seeds(name):
            run(name, s)
        print(name, "ok", os.getpid())
