"""Helpers for the boot-repair tests: factory-disk copies, moving C:, reading files and hives with the
real tools (ntfs-3g, mtools, hivex, sfdisk), and a BCD-independent scan of partition descriptors."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from core.partition import gpt, mbr
from core.partition.c_mbr import MBR_SECTOR
from core.partition.model import Partition
from tests.factory import DiskInfo, PartInfo, cached_disk_info, copy_disk
from tests.ntfs3g import MTOOLS_ENV, mounted_ntfs, run
from tests.regf.regf_helpers import hivex_dump, make_clean

ROOT = Path(__file__).resolve().parents[2]
HIVEX_KEY = Path(__file__).with_name("hivex_key.py")
MiB = 1 << 20
SECTOR = 512
SYSTEM = "Windows/System32/config/SYSTEM"
PARTITION_MAGIC = bytes.fromhex("06000000 00000000 48000000 00000000")


def disk_copy(kind: str, dst: Path, **overrides: object) -> DiskInfo:
    """A private copy of a cached factory disk (the cache is shared: never written)."""
    info = cached_disk_info(kind, **overrides)
    copy_disk(info.path, dst)
    return DiskInfo(dst, info.size, info.scheme, info.disk_id, info.partitions, info.seed, info.manifest)


def clean_system_hive(img: Path, part: PartInfo, *, remove_hiberfile: bool = False) -> None:
    """Test-only: mark a dirty SYSTEM hive (a factory disk built with ``dirty_system=True``) clean (seq2 =
    seq1, checksum fixed: tests.regf.regf_helpers.make_clean), writing through ntfs-3g. A clean hive is
    left as it is."""
    with mounted_ntfs(img, part.start, part.size, readonly=False, remove_hiberfile=remove_hiberfile) as mnt:
        make_clean(mnt / SYSTEM)


def wake_up(img: Path, part: PartInfo) -> None:
    """Let ntfs-3g drop a hibernated Windows' hiberfil.sys (as if Windows had been shut down instead)."""
    with mounted_ntfs(img, part.start, part.size, readonly=False, remove_hiberfile=True):
        pass


def set_mbr_signature(img: Path, signature: int) -> None:
    """Give the disk a new MBR disk signature and nothing else: every stored MBR identity points nowhere."""
    with img.open("r+b") as f:
        f.seek(MBR_SECTOR.offsets["disk_signature"][0])
        f.write(struct.pack("<I", signature))


def put_ntfs_file(img: Path, part: PartInfo, rel: str, data: bytes, *, remove_hiberfile: bool = False) -> None:
    with mounted_ntfs(img, part.start, part.size, readonly=False, remove_hiberfile=remove_hiberfile) as mnt:
        (mnt / rel).parent.mkdir(parents=True, exist_ok=True)
        (mnt / rel).write_bytes(data)


def read_ntfs_files(img: Path, start: int, size: int, folder: str) -> dict[str, bytes]:
    """Every file of one folder of an NTFS volume (name -> bytes), through a read-only ntfs-3g mount."""
    with mounted_ntfs(img, start, size, readonly=True) as mnt:
        d = mnt / folder
        return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def read_fat_file(img: Path, offset: int, rel: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "f"
        run(["mcopy", "-n", "-i", f"{img}@@{offset}", "::/" + rel, str(out)], env=MTOOLS_ENV)
        return out.read_bytes()


def fat_listing(img: Path, offset: int, folder: str) -> list[str]:
    text = run(["mdir", "-b", "-i", f"{img}@@{offset}", "::/" + folder + "/"], env=MTOOLS_ENV)
    return [ln.strip().rstrip("/").rsplit("/", 1)[-1] for ln in text.splitlines() if ln.strip().startswith("::")]


def hive_key_values(hive: Path | bytes, key: str) -> dict[str, tuple[int, bytes]] | None:
    """Values of ``key`` as hivex reads them (an independent reader)."""
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(hive, bytes):
            p = Path(tmp) / "hive"
            p.write_bytes(hive)
            hive = p
        res = subprocess.run(["/usr/bin/python3", str(HIVEX_KEY), str(hive), key], capture_output=True, text=True,
                             timeout=120, check=False)
    if res.returncode != 0:
        raise AssertionError(f"hivex could not read {hive}: {res.stderr.strip()}")
    raw = json.loads(res.stdout)
    return None if raw is None else {k: (t, bytes.fromhex(h)) for k, (t, h) in raw.items()}


def hivex_bcd_devices(store: bytes) -> dict[tuple[str, str], bytes]:
    """(object key, element key) -> Element data of every device-format element, read by hivex."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "BCD"
        p.write_bytes(store)
        dump = hivex_dump(p)
    out = {}
    for path, values in dump:
        parts = path.split("\\")
        if len(parts) == 4 and parts[0] == "Objects" and parts[2] == "Elements" and (int(parts[3], 16) >> 24) & 0xF == 1:
            for name, _t, data in values:
                if name == "Element":
                    out[(parts[1], parts[3])] = bytes.fromhex(data)
    return out


def hivex_bcd_strings(store: bytes) -> dict[tuple[str, str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "BCD"
        p.write_bytes(store)
        dump = hivex_dump(p)
    out = {}
    for path, values in dump:
        parts = path.split("\\")
        if len(parts) == 4 and parts[0] == "Objects" and parts[2] == "Elements":
            for name, t, data in values:
                if name == "Element" and t in (1, 7):
                    out[(parts[1], parts[3])] = bytes.fromhex(data).decode("utf-16-le").rstrip("\0")
    return out


def scan_partition_descriptors(data: bytes) -> list[tuple[str, Any, Any]]:
    """Every type-6 partition descriptor in an element (nested ones too), decoded here from the bytes
    (BOOT.md §8.4), independently of core.bcd: ("mbr", signature, offset) / ("gpt", disk, part)."""
    out = []
    pos = data.find(PARTITION_MAGIC)
    while pos >= 0:
        d = data[pos:pos + 0x48]
        style = struct.unpack_from("<I", d, 0x24)[0]
        if style == 1:
            out.append(("mbr", struct.unpack_from("<I", d, 0x28)[0], struct.unpack_from("<Q", d, 0x10)[0]))
        elif style == 0:
            out.append(("gpt", str(uuid.UUID(bytes_le=d[0x28:0x38])), str(uuid.UUID(bytes_le=d[0x10:0x20]))))
        pos = data.find(PARTITION_MAGIC, pos + 1)
    return out


def sfdisk_table(img: Path) -> dict[str, Any]:
    """The partition table as sfdisk reads it (the independent view of where partitions are)."""
    t = json.loads(run(["sfdisk", "--json", str(img)]))["partitiontable"]
    t["starts"] = [int(p["start"]) * SECTOR for p in t["partitions"]]
    return t


def resolves(desc: tuple[str, Any, Any], table: dict[str, Any]) -> bool:
    if desc[0] == "mbr":
        return table["label"] == "dos" and desc[1] == int(table["id"], 16) and desc[2] in table["starts"]
    return (table["label"] == "gpt" and desc[1] == table["id"].lower()
            and desc[2] in [p["uuid"].lower() for p in table["partitions"]])


def move_partition(info: DiskInfo, number: int, shift: int, disk_id: str | None) -> DiskInfo:
    """Grow the image by ``shift`` bytes, move partition ``number``'s bytes ``shift`` later (copied
    from the end, the ranges overlap) and write a fresh table with the new start and ``disk_id`` (MBR
    signature; GPT: new disk GUID and new partition GUIDs). Nothing else is fixed: no boot code, no
    active flag, no hidden sectors, no BCD, no letters."""
    img = info.path
    size = info.size + shift
    os.truncate(img, size)
    p = next(q for q in info.partitions if q.number == number)
    chunk = 4 * MiB
    fd = os.open(img, os.O_RDWR)
    try:
        end = p.size
        while end > 0:
            n = min(chunk, end)
            end -= n
            data = os.pread(fd, n, p.start + end)
            os.pwrite(fd, data, p.start + shift + end)
        parts = []
        new_parts = []
        for q in info.partitions:
            start = q.start + shift if q.number == number else q.start
            guid = str(uuid.uuid4()) if info.scheme == "gpt" else None
            parts.append(Partition(q.number, start, q.size, q.type_id, guid=guid, name=q.name))
            new_parts.append(PartInfo(q.number, start, q.size, q.role, q.type_id, q.fs, q.label, guid, q.name))
        if info.scheme == "mbr":
            writes = mbr.build(parts, size, SECTOR, disk_id or info.disk_id)
        else:
            disk_id = disk_id or str(uuid.uuid4())
            os.pwrite(fd, bytes(34 * SECTOR), 0)  # the old primary GPT must not survive anywhere
            writes = gpt.build(parts, size, SECTOR, disk_id)
        for off, data in writes:
            os.pwrite(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return DiskInfo(img, size, info.scheme, disk_id or info.disk_id, tuple(new_parts), info.seed, info.manifest)


def rescue(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rescue", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, check=False)


def rescue_json(*args: str) -> tuple[int, Any]:
    r = rescue(*args, "--json")
    try:
        return r.returncode, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"rescue {' '.join(args)} printed no JSON (rc {r.returncode}): {r.stdout} {r.stderr}") from None


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hidden_sectors(img: Path, offset: int) -> int:
    with img.open("rb") as f:
        f.seek(offset + 0x1C)
        return int(struct.unpack("<I", f.read(4))[0])


def ntfs_backup_offset(img: Path, start: int) -> int:
    """Byte offset of the NTFS backup boot sector: sector ``total_sectors`` (BPB 0x28) of the volume."""
    with img.open("rb") as f:
        f.seek(start + 0x28)
        total = struct.unpack("<q", f.read(8))[0]
    return start + total * SECTOR
