"""FAT12/16/32 boot sector and allocation table: which bytes of the volume are in use, and path lookup.

Type by cluster count as Microsoft's fatgen103 prescribes (< 4085 FAT12, < 65525 FAT16, else FAT32),
never by the label string. Used = the system area (reserved sectors, every FAT copy and, on FAT12/16,
the root directory region) plus every cluster whose entry is non-zero. Clusters marked bad are left out:
they hold no file data, reading them usually fails on the source disk, and the FAT itself (imaged)
keeps them marked so the restored filesystem still avoids them. Path lookup (long names included,
case-insensitive) serves the ESP check for EFI/Microsoft/Boot/BCD.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..errors import FormatError
from ..extents import Extent, Runs, merge_extents
from ..io.reader import Reader, read_exact
from ..windows.roles import BIOS_BCD, BOOTMGR, EFI_BCD
from .c_fat import ATTR_DIRECTORY, ATTR_LFN, ATTR_VOLUME_ID, DIR_ENTRY, FAT16_EXT, FAT32_EXT, FAT_BPB
from .model import FsUsage

PIECE = 1024 * 1024  # FAT read in 1 MiB pieces: memory bounded whatever the FAT size (up to 1 GiB)
# The FAT spec limits a directory to 65536 entries of 32 bytes; a longer chain is a loop or corruption.
MAX_DIR_BYTES = 65536 * 32
MAX_PATH_DEPTH = 64  # lookups are a few components deep; the cap stops absurd inputs
_LOW_NIBBLE = bytes(b & 0x0F for b in range(256))  # FAT32 entries are 28 bits: mask the top nibble
_BAD = {16: re.compile(rb"(?=\xf7\xff)"), 32: re.compile(rb"(?=\xf7\xff\xff[\x0f\x1f\x2f\x3f\x4f\x5f\x6f\x7f"
                                                       rb"\x8f\x9f\xaf\xbf\xcf\xdf\xef\xff])")}


FatKind = Literal["fat12", "fat16", "fat32"]


@dataclass(frozen=True)
class FatGeometry:
    kind: FatKind
    bytes_per_sector: int
    cluster_size: int
    sectors_per_cluster: int
    reserved_sectors: int
    fats: int
    fat_size: int  # sectors per FAT
    root_entries: int
    total_sectors: int
    clusters: int  # count of data clusters, numbered 2..clusters+1
    root_cluster: int  # FAT32 only
    active_fat: int
    volume_id: int
    label: str

    @property
    def fat_offset(self) -> int:
        return (self.reserved_sectors + self.active_fat * self.fat_size) * self.bytes_per_sector

    @property
    def root_dir_offset(self) -> int:
        return (self.reserved_sectors + self.fats * self.fat_size) * self.bytes_per_sector

    @property
    def data_offset(self) -> int:
        root_bytes = (self.root_entries * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector
        return self.root_dir_offset + root_bytes * self.bytes_per_sector

    def cluster_offset(self, n: int) -> int:
        return self.data_offset + (n - 2) * self.cluster_size

    @property
    def bits(self) -> int:
        return {"fat12": 12, "fat16": 16, "fat32": 32}[self.kind]


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_fat_boot(sector: bytes, partition_size: int) -> FatGeometry:
    """Parse and validate a FAT boot sector for a volume of ``partition_size`` bytes."""
    what = "FAT boot sector"
    f = FAT_BPB.parse(sector, 0, what)
    if f["jump"][0] not in (0xEB, 0xE9):
        raise FormatError(what=what, detail=f"jump instruction {f['jump'][0]:#04x} is not EB/E9")
    bps, spc = f["bytes_per_sector"], f["sectors_per_cluster"]
    if bps not in (512, 1024, 2048, 4096):
        raise FormatError(what=what, detail=f"bytes per sector {bps} not in 512..4096")
    if not _pow2(spc) or spc > 128:
        raise FormatError(what=what, detail=f"sectors per cluster {spc} is not a power of two up to 128")
    if f["reserved_sectors"] < 1 or not 1 <= f["fats"] <= 4:
        raise FormatError(what=what,
                          detail=f"reserved sectors {f['reserved_sectors']} / FATs {f['fats']} invalid")
    fat_size = f["fat_size16"]
    ext32 = FAT32_EXT.parse(sector, 0x24, what)
    if fat_size == 0:
        fat_size = ext32["fat_size32"]
    total = f["total16"] or f["total32"]
    if fat_size == 0 or total == 0:
        raise FormatError(what=what, detail="FAT size or total sectors is 0")
    if total * bps > partition_size:
        raise FormatError(what=what, detail=f"{total} sectors exceed the partition ({partition_size} bytes)")
    root_sectors = (f["root_entries"] * 32 + bps - 1) // bps
    system = f["reserved_sectors"] + f["fats"] * fat_size + root_sectors
    if system >= total:
        raise FormatError(what=what, detail=f"system area ({system} sectors) fills the {total}-sector volume")
    clusters = (total - system) // spc
    kind: FatKind = "fat12" if clusters < 4085 else "fat16" if clusters < 65525 else "fat32"
    root_cluster = 0
    active = 0
    if kind == "fat32":
        if f["root_entries"] or f["fat_size16"]:
            raise FormatError(what=what, detail="FAT32-sized volume with FAT12/16 root entries or FAT size")
        root_cluster = ext32["root_cluster"]
        if not 2 <= root_cluster < clusters + 2:
            raise FormatError(what=what, detail=f"root cluster {root_cluster} outside 2..{clusters + 1}")
        if ext32["ext_flags"] & 0x80:  # mirroring off: only the active FAT is current
            active = ext32["ext_flags"] & 0x0F
            if active >= f["fats"]:
                raise FormatError(what=what, detail=f"active FAT {active} of {f['fats']}")
        vol_id, label = ext32["volume_id"], ext32["label"]
    else:
        if f["root_entries"] == 0:
            raise FormatError(what=what, detail=f"{kind} volume without root directory entries")
        ext = FAT16_EXT.parse(sector, 0x24, what)
        vol_id, label = ext["volume_id"], ext["label"]
    bits = 12 if kind == "fat12" else 16 if kind == "fat16" else 32
    if fat_size * bps * 8 < (clusters + 2) * bits:
        raise FormatError(what=what, detail=f"FAT of {fat_size} sectors too small for {clusters} clusters")
    return FatGeometry(kind=kind, bytes_per_sector=bps, cluster_size=bps * spc, sectors_per_cluster=spc,
                       reserved_sectors=f["reserved_sectors"], fats=f["fats"], fat_size=fat_size,
                       root_entries=f["root_entries"], total_sectors=total, clusters=clusters,
                       root_cluster=root_cluster, active_fat=active, volume_id=vol_id,
                       label=label.decode("latin-1").rstrip(" \x00"))


def looks_like_fat(sector: bytes, partition_size: int) -> bool:
    """BPB sanity check used for detection (no FAT signature string is trusted)."""
    try:
        parse_fat_boot(sector, partition_size)
    except FormatError:
        return False
    return True


class FatVolume:
    """Read-only FAT access: allocation runs, cluster chains, directories."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.geo = parse_fat_boot(read_exact(reader, 0, 512, "FAT boot sector"), reader.size)
        self.eoc = {"fat12": 0xFF8, "fat16": 0xFFF8, "fat32": 0x0FFFFFF8}[self.geo.kind]
        self.bad = self.eoc - 1

    def entry(self, n: int) -> int:
        g = self.geo
        if g.kind == "fat12":
            raw = read_exact(self.reader, g.fat_offset + n * 3 // 2, 2, "FAT")
            v = int.from_bytes(raw, "little")
            return v >> 4 if n & 1 else v & 0xFFF
        width = g.bits // 8
        v = int.from_bytes(read_exact(self.reader, g.fat_offset + n * width, width, "FAT"), "little")
        return v & 0x0FFFFFFF if g.kind == "fat32" else v

    def used_cluster_runs(self) -> Iterator[tuple[int, int]]:
        """Runs (first cluster, count) of clusters 2..N+1 whose entry is neither free nor bad."""
        g = self.geo
        last = g.clusters + 2  # one past the last cluster number
        if g.kind == "fat12":
            # At most 4084 clusters (a 6 KiB FAT): entry by entry is fast enough.
            start = -1
            for n in range(2, last + 1):
                in_use = n < last and self.entry(n) not in (0, self.bad)
                if in_use and start < 0:
                    start = n
                elif not in_use and start >= 0:
                    yield start, n - start
                    start = -1
            return
        width = g.bits // 8
        total = last * width
        cur_start = cur_end = -1
        for off in range(0, total, PIECE):  # PIECE is a multiple of 4: pieces hold whole entries
            piece = read_exact(self.reader, g.fat_offset + off, min(PIECE, total - off), "FAT")
            if width == 4:
                lanes = [piece[0::4], piece[1::4], piece[2::4], piece[3::4].translate(_LOW_NIBBLE)]
            else:
                lanes = [piece[0::2], piece[1::2]]
            acc = 0
            for lane in lanes:  # OR of the entry's bytes, as whole-piece integers: C speed
                acc |= int.from_bytes(lane, "little")
            mask = bytearray(acc.to_bytes(len(lanes[0]), "little"))
            for m in _BAD[g.bits].finditer(piece):
                if m.start() % width == 0:
                    mask[m.start() // width] = 0
            first = off // width
            if first < 2:
                mask[:2 - first] = bytes(2 - first)  # entries 0 and 1 are not clusters
            for m in re.finditer(rb"[^\x00]+", mask):
                s, e = first + m.start(), first + m.end()
                if s == cur_end:
                    cur_end = e
                else:
                    if cur_end > cur_start >= 0:
                        yield cur_start, cur_end - cur_start
                    cur_start, cur_end = s, e
        if cur_end > cur_start >= 0:
            yield cur_start, cur_end - cur_start

    def chain(self, first: int, max_clusters: int) -> list[int]:
        """Clusters of a chain; loops and chains longer than ``max_clusters`` are errors."""
        out: list[int] = []
        n = first
        while n < self.eoc:
            if not 2 <= n < self.geo.clusters + 2:
                raise FormatError(what="FAT chain", detail=f"cluster {n} outside the volume (from {first})")
            if len(out) >= max_clusters:
                raise FormatError(what="FAT chain", detail=f"chain from cluster {first} longer than "
                                                           f"{max_clusters} clusters (loop?)")
            out.append(n)
            n = self.entry(n)
        return out

    def read_dir(self, cluster: int) -> bytes:
        g = self.geo
        if cluster == 0:  # FAT12/16 fixed root directory region
            return read_exact(self.reader, g.root_dir_offset, g.root_entries * 32, "FAT root directory")
        out = bytearray()
        for c in self.chain(cluster, max(1, MAX_DIR_BYTES // g.cluster_size)):
            out += read_exact(self.reader, g.cluster_offset(c), g.cluster_size, f"FAT directory cluster {c}")
        return bytes(out)

    def iter_dir(self, cluster: int) -> Iterator[tuple[str, str, int, int]]:
        """(long name or "", 8.3 name, attributes, first cluster) of each live entry."""
        data = self.read_dir(cluster)
        lfn: dict[int, str] = {}
        for pos in range(0, len(data) - 31, 32):
            e = DIR_ENTRY.parse(data, pos, "FAT directory entry")
            first = data[pos]
            if first == 0:
                return
            if first == 0xE5:
                lfn = {}
                continue
            if e["attr"] & 0x3F == ATTR_LFN:
                part = (data[pos + 1:pos + 11] + data[pos + 14:pos + 26] + data[pos + 28:pos + 32])
                lfn[first & 0x1F] = part.decode("utf-16-le", errors="replace")
                continue
            if e["attr"] & ATTR_VOLUME_ID:
                lfn = {}
                continue
            raw = bytes([0xE5]) + e["name"][1:] if first == 0x05 else e["name"]
            base, ext = raw[:8].decode("latin-1").rstrip(), raw[8:].decode("latin-1").rstrip()
            short = f"{base}.{ext}" if ext else base
            long = "".join(lfn[k] for k in sorted(lfn)).split("\x00")[0] if lfn else ""
            lfn = {}
            start = e["cluster_lo"] | (e["cluster_hi"] << 16 if self.geo.kind == "fat32" else 0)
            yield long, short, e["attr"], start

    def find_path(self, path: str) -> tuple[int, int] | None:
        """(attributes, first cluster) of ``path`` (case-insensitive, long or 8.3 names), or None."""
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        if len(parts) > MAX_PATH_DEPTH:
            raise FormatError(what="path", detail=f"more than {MAX_PATH_DEPTH} components")
        cluster = self.geo.root_cluster if self.geo.kind == "fat32" else 0
        attr = ATTR_DIRECTORY
        for part in parts:
            if not attr & ATTR_DIRECTORY:
                return None
            want = part.casefold()
            for long, short, a, start in self.iter_dir(cluster):
                if want in (long.casefold(), short.casefold()) and short not in (".", ".."):
                    attr, cluster = a, start
                    break
            else:
                return None
        return attr, cluster


def fat_usage(reader: Reader) -> FsUsage:
    """Used byte extents of a FAT12/16/32 volume plus label, serial and boot-manager presence."""
    vol = FatVolume(reader)
    g = vol.geo
    used: list[Extent] = [(0, g.data_offset)]
    used += [(g.cluster_offset(s), n * g.cluster_size) for s, n in vol.used_cluster_runs()]
    usage = FsUsage(fs=g.kind, cluster_size=g.cluster_size, used=Runs(merge_extents(used)),
                    label=g.label, serial=f"{g.volume_id >> 16:04X}-{g.volume_id & 0xFFFF:04X}")
    try:
        efi = vol.find_path(EFI_BCD)
        bios = vol.find_path(BOOTMGR) is not None and vol.find_path(BIOS_BCD) is not None
        usage.has_bootmgr = (efi is not None and not efi[0] & ATTR_DIRECTORY) or bios
    except FormatError as e:
        usage.warnings.append(f"could not look up the boot manager files ({e.message})")
    return usage
