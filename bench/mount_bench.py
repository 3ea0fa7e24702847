"""Browsing speed: files read through `rescue mount` beside the same files read from the original disk.

    python3 bench/mount_bench.py [--disk DISK.img] [--folder BACKUP] [--password-file F] [--reads 2000]

The disk defaults to the smallest bench/work/disk-*.img (made by bench/make_disk.py), else the test
factory's "mbr-small" disk. Without --folder it is backed up (zstd level 3) into a temporary folder
first. Both sides are read through ntfs-3g: the original disk's partition on a loop device, the image's
through our FUSE server, a read-only loop device and ntfs-3g. Measured, per side:

- time to first byte: from the mount command to the first 4 KiB of the largest file (its path known
  beforehand), on a fresh mount;
- random 4 KiB read latency: reads at random 4 KiB-aligned offsets of the 20 largest files
  (p50/p99/mean), on that fresh mount;
- sequential read rate: every regular file read once, in directory order, on another fresh mount.

Root only (loop devices, FUSE). Prints a small table; nothing is written to the disk or the backup.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.engine.backup import BackupOptions, backup  # noqa: E402
from core.progress import Progress  # noqa: E402
from rescue.context import read_password  # noqa: E402
from rescue.mount import server, stack  # noqa: E402
from tests.ntfs3g import mounted_ntfs, partitions  # noqa: E402

BLOCK = 1 << 20


def pick_disk() -> Path:
    found = sorted((ROOT / "bench" / "work").glob("disk-*.img"), key=lambda p: p.stat().st_size)
    if found:
        return found[0]
    from tests.factory import cached_disk  # builds it once (needs root tools)
    return cached_disk("mbr-small")


def files_of(root: Path) -> list[Path]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and not p.is_symlink() and n not in ("pagefile.sys", "hiberfil.sys"):
                out.append(p)
    return out


def drop(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def first_byte(path: Path) -> None:
    with open(path, "rb") as f:
        f.read(4096)


def sequential(files: list[Path]) -> tuple[int, float]:
    for p in files:
        drop(p)
    total, t0 = 0, time.monotonic()
    for p in files:
        with open(p, "rb") as f:
            while block := f.read(BLOCK):
                total += len(block)
    return total, time.monotonic() - t0


def random_reads(files: list[Path], n: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    big = sorted(files, key=lambda p: p.stat().st_size, reverse=True)[:20]
    fds = [(os.open(p, os.O_RDONLY), p.stat().st_size) for p in big if p.stat().st_size >= 4096]
    for p in big:
        drop(p)
    lat = []
    try:
        for _ in range(n):
            fd, size = rnd.choice(fds)
            off = rnd.randrange(0, size // 4096) * 4096
            t0 = time.perf_counter()
            os.pread(fd, 4096, off)
            lat.append(time.perf_counter() - t0)
    finally:
        for fd, _ in fds:
            os.close(fd)
    return lat


@contextmanager
def image_side(folder: str, password: bytes | None, number: int) -> Iterator[tuple[Path, float]]:
    mp = tempfile.mkdtemp(prefix="mount-bench-")
    t0 = time.monotonic()
    res = server.mount(folder, None, lambda: password, mp)
    try:
        yield Path(mp) / f"p{number}", t0
    finally:
        stack.teardown(mp)
        server.reap(res.pid)
        if res.log:
            Path(res.log).unlink(missing_ok=True)
        os.rmdir(mp)


def measure(side: Callable[[], AbstractContextManager[tuple[Path, float]]], probe: str,
            reads: int) -> dict[str, float]:
    """Each measurement on a fresh mount, so none is served from caches another one filled (the loop
    device's and our FUSE files' page caches go with the mount; the backing files stay in the host's
    page cache on both sides alike)."""
    with side() as (root, t0):
        first_byte(root / probe)  # before anything else touches the mount
        ttfb = time.monotonic() - t0
        files = files_of(root)
        lat = sorted(random_reads(files, reads, 7))
    with side() as (root, _):
        total, secs = sequential(files_of(root))
    return {"ttfb_ms": ttfb * 1000, "files": len(files), "mib": total / BLOCK, "seq_mib_s": total / BLOCK / secs,
            "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
            "mean_ms": statistics.fmean(lat) * 1000}


@contextmanager
def disk_side(disk: Path, offset: int, length: int) -> Iterator[tuple[Path, float]]:
    t0 = time.monotonic()
    with mounted_ntfs(disk, offset, length) as mnt:
        yield Path(mnt), t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--disk", type=Path, default=None)
    ap.add_argument("--folder", default=None, help="existing backup of --disk (default: make one)")
    ap.add_argument("--password-file", default=None)
    ap.add_argument("--reads", type=int, default=2000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("mount_bench: run as root (loop devices, FUSE)", file=sys.stderr)
        return 3
    disk = args.disk or pick_disk()
    password = read_password(args.password_file) if args.password_file else None
    # the largest NTFS partition is the one worth browsing
    parts = [p for p in partitions(disk) if p["type"] in ("7", "07", "0x07") or "EBD0A0A2" in str(p["type"]).upper()]
    part = max(parts or partitions(disk), key=lambda p: p["length"])
    tmp = None
    folder = args.folder
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="mount-bench-img-", dir=str(ROOT / "bench" / "work")
                               if (ROOT / "bench" / "work").is_dir() else None)
        folder = os.path.join(tmp, "img")
        t = time.monotonic()
        backup(str(disk), folder, BackupOptions(password=password), Progress())
        print(f"backed up {disk} in {time.monotonic() - t:.1f} s", file=sys.stderr)
    try:
        print(f"disk {disk} ({disk.stat().st_size / 2**30:.1f} GiB), partition {part['number']}, image {folder}")
        with disk_side(disk, part["offset"], part["length"]) as (mnt, _):
            probe = str(max(files_of(mnt), key=lambda p: p.stat().st_size).relative_to(mnt))
        results = {
            "original disk (ntfs-3g)": measure(lambda: disk_side(disk, part["offset"], part["length"]), probe,
                                               args.reads),
            "image (rescue mount)": measure(lambda: image_side(folder, password, part["number"]), probe, args.reads),
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    head = f"{'':28} {'first byte':>11} {'seq MiB/s':>10} {'4K p50':>8} {'4K p99':>8} {'4K mean':>8}  files / MiB"
    print(head)
    for name, r in results.items():
        print(f"{name:28} {r['ttfb_ms']:9.0f}ms {r['seq_mib_s']:10.1f} {r['p50_ms']:6.2f}ms {r['p99_ms']:6.2f}ms "
              f"{r['mean_ms']:6.2f}ms  {r['files']:.0f} / {r['mib']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
