"""A large synthetic source disk without the disk space: what it holds and how its bytes are made.

The disk is a sparse *base* file (an MBR with one NTFS partition at 1 MiB, formatted by mkntfs, so its
metadata is real) plus a list of *synthetic extents*: runs of clusters marked used in that volume's
$Bitmap, spread over the volume like files written over years (runs of 4 KiB to 16 MiB with gaps in
proportion), whose bytes are never stored anywhere but computed on each read by `Content`: a keyed
BLAKE3 stream (the XOF runs at GB/s) per 64 KiB block, keyed by (block, version). Bytes outside the
synthetic extents come from the base file (the metadata; zeros in its holes).

The engine's NTFS reader takes the used clusters from $Bitmap alone, after checking that the volume is
clean and that $MFTMirr matches $MFT (core/fs/ntfs_usage.py); mkntfs leaves both true, and setting bits
in $Bitmap changes neither, so the engine reads exactly the base's metadata plus the synthetic extents.

A *generation* g changes ~1 % of the synthetic 64 KiB blocks per step (block b gets a new version at
step k when a hash of (b, k) falls in 1 %), deterministically: generation 1 is "the day after" for an
incremental. The base and its layout (``layout.json``) are built once per parameters and reused.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import blake3
import xxhash

from core.extents import Extent, merge_extents, subtract_extents
from core.fs.c_ntfs import AT_DATA
from core.fs.ntfs_usage import FILE_BITMAP, bitmap_runs
from core.fs.ntfs_volume import PIECE, NtfsVolume, Stream
from core.io.reader import FdReader, WindowReader
from core.platform.loops import loop_device

MiB = 1 << 20
GiB = 1 << 30
PART_START = 1 * MiB
BLOCK = 64 * 1024  # content unit: what one PRNG call makes and what a generation changes
CHANGE_PERCENT = 1  # share of the synthetic blocks a generation step changes
RECIPE = 1  # bump when the layout or content recipe changes, so cached bases are rebuilt
# Run lengths in clusters, log-uniform: from one cluster (small files) to 16 MiB (a big file's extent).
RUN_MIN, RUN_MAX = 1, 4096


@dataclass
class Layout:
    """The synthetic disk: its base file, size, seed and synthetic extents (disk byte offsets)."""

    base: str
    size: int
    seed: int
    extents: list[Extent]

    @property
    def synthetic_bytes(self) -> int:
        return sum(n for _, n in self.extents)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps({"base": self.base, "size": self.size, "seed": self.seed,
                                   "extents": self.extents}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Layout:
        d = json.loads(path.read_text())
        return cls(d["base"], d["size"], d["seed"], [(a, n) for a, n in d["extents"]])


class Content:
    """The bytes of a synthetic disk at one generation: base file overlaid with generated blocks."""

    def __init__(self, layout: Layout, generation: int) -> None:
        self.layout = layout
        self.generation = generation
        self.fd = os.open(layout.base, os.O_RDONLY)
        self.key = blake3.blake3(f"rescue-synthdisk-{layout.seed}".encode()).digest()
        self.starts = [a for a, _ in layout.extents]
        self._last: tuple[int, bytes] = (-1, b"")

    def version(self, block: int) -> int:
        """How many generation steps up to ours changed ``block``."""
        seed = self.layout.seed
        return sum(1 for k in range(1, self.generation + 1)
                   if xxhash.xxh64_intdigest(f"{block}:{k}".encode(), seed) % 100 < CHANGE_PERCENT)

    def block(self, block: int) -> bytes:
        """64 KiB of content: ~45 % incompressible, ~35 % text-like (16 symbols: zstd halves it), ~20 %
        a 512-byte motif repeated (compresses ~100x), so the compressor does real, mixed work."""
        if self._last[0] == block:
            return self._last[1]
        v = self.version(block)
        h = blake3.blake3(block.to_bytes(8, "little") + v.to_bytes(4, "little"), key=self.key)
        kind = xxhash.xxh64_intdigest(f"{block}:{v}:kind".encode(), self.layout.seed) % 20
        if kind < 9:
            data = h.digest(BLOCK)
        elif kind < 16:
            data = h.digest(BLOCK).translate(_TEXT)
        else:
            data = h.digest(512) * (BLOCK // 512)
        self._last = (block, data)
        return data

    def read(self, off: int, size: int) -> bytes:
        size = max(0, min(size, self.layout.size - off))
        buf = bytearray(os.pread(self.fd, size, off))
        buf.extend(bytes(size - len(buf)))  # the base may be shorter than the disk: holes read as zeros
        end = off + size
        i = max(0, bisect.bisect_right(self.starts, off) - 1)
        for a, n in self.layout.extents[i:]:
            if a >= end:
                break
            lo, hi = max(a, off), min(a + n, end)
            pos = lo
            while pos < hi:  # block by block over the overlap
                b = pos // BLOCK
                stop = min(hi, (b + 1) * BLOCK)
                buf[pos - off:stop - off] = self.block(b)[pos - b * BLOCK:stop - b * BLOCK]
                pos = stop
        return bytes(buf)


_TEXT = bytes(b"etaoinshrdlu \n.,"[b & 15] for b in range(256))


def _runs(rng: random.Random, clusters: int, target: int, run_max: int = RUN_MAX) -> list[Extent]:
    """Cluster runs covering about ``target`` of ``clusters``, with gaps in proportion, from cluster 0."""
    ratio = clusters / max(1, target)
    out: list[Extent] = []
    pos = total = 0
    lo, hi = math.log(RUN_MIN), math.log(run_max + 1)
    while total < target:
        length = min(int(math.exp(rng.uniform(lo, hi))), target - total)
        pos += int(length * (ratio - 1) * rng.uniform(0.0, 2.0))
        if pos + length > clusters:
            break
        out.append((pos, length))
        pos += length
        total += length
    return out


def _set_bits(bitmap: bytearray, runs: list[Extent]) -> None:
    for first, count in runs:
        end = first + count
        while first < end and first % 8:
            bitmap[first // 8] |= 1 << (first % 8)
            first += 1
        whole = (end - first) // 8
        bitmap[first // 8:first // 8 + whole] = b"\xff" * whole
        first += 8 * whole
        while first < end:
            bitmap[first // 8] |= 1 << (first % 8)
            first += 1


def _mark_used(base: str, part_size: int, used: int, seed: int, run_max: int = RUN_MAX) -> list[Extent]:
    """Set $Bitmap bits for ~``used`` bytes of runs in the free space; the synthetic disk extents."""
    fd = os.open(base, os.O_RDWR)
    try:
        vol = NtfsVolume(WindowReader(FdReader(fd, os.fstat(fd).st_size, base), PART_START, part_size))
        s = vol.stream(vol.record(FILE_BITMAP), AT_DATA)
        if not isinstance(s, Stream):
            raise RuntimeError("mkntfs made a resident $Bitmap: the volume is too small for a scale disk")
        need = (vol.nr_clusters + 7) // 8
        bitmap = bytearray(b"".join(vol.iter_stream(s, need, PIECE)))
        meta = bitmap_runs([bytes(bitmap)], vol.nr_clusters)
        runs = subtract_extents(_runs(random.Random(seed), vol.nr_clusters, used // vol.cs, run_max), meta)
        _set_bits(bitmap, runs)
        done = 0
        for r in s.runs:  # write the bitmap back where its clusters are
            if done >= need:
                break
            if r.lcn is None:
                raise RuntimeError("mkntfs made a sparse $Bitmap")
            n = min(r.length * vol.cs, need - done)
            os.pwrite(fd, bytes(bitmap[done:done + n]), PART_START + r.lcn * vol.cs)
            done += n
        os.fsync(fd)
        return [(PART_START + a * vol.cs, n * vol.cs) for a, n in merge_extents(runs)]
    finally:
        os.close(fd)


def build(workdir: Path, size: int, used: int, seed: int = 1, run_max: int = RUN_MAX) -> Layout:
    """The layout of a synthetic disk of ``size`` bytes with ~``used`` bytes of synthetic data (cached);
    ``run_max`` (clusters) below the default makes a more fragmented volume: more, shorter used runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"synth-{size}-{used}-{seed}-r{RECIPE}" + (f"-m{run_max}" if run_max != RUN_MAX else "")
    path = workdir / f"{name}.layout.json"
    if path.exists():
        return Layout.load(path)
    base = workdir / f"{name}.base"
    with open(base, "wb") as f:
        f.truncate(size)
    part_size = (size - PART_START) // MiB * MiB
    subprocess.run(["sfdisk", "-q", str(base)], check=True, capture_output=True, text=True,
                   input=f"label: dos\nlabel-id: 0x5ca1ab1e\n{PART_START // 512},{part_size // 512},7\n")
    with loop_device(str(base), offset=PART_START, size=part_size, error=RuntimeError) as dev:
        subprocess.run(["mkntfs", "-f", "-q", "-L", "SYNTH", "-p", str(PART_START // 512), "-H", "255",
                        "-S", "63", dev], check=True, capture_output=True)
    layout = Layout(str(base), size, seed, _mark_used(str(base), part_size, used, seed, run_max))
    layout.save(path)
    return layout
