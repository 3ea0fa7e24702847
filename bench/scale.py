"""Scale bench: time, bytes and memory of full, incremental (~1 % changed), verify, restore and merge
against used size.

For each used size it builds (or reuses, under bench/work/scale/) a synthetic disk of ``--size`` bytes
(tests/scale/synthdisk.py: real NTFS metadata from mkntfs on a sparse file, ``used`` bytes marked in
$Bitmap and generated on the fly through FUSE, so a 1 TiB disk needs ~100 MiB of disk space for
itself), then runs tests/scale/harness.py: `rescue backup`, `rescue backup --incremental` after
generation 1 changed ~1 % of the data blocks, `rescue verify` and `rescue restore` of that point (onto
a sparse file), and `rescue merge`, each a fresh process whose own peak
RSS is measured (tests/scale/peak.py). The images are deleted after each point; only the figures stay.

Prints one markdown table (a row per point and step) and the growth per GiB used of what should not
grow, and writes it to bench/work/scale-results.md too.

    bench/run.sh --scale                                   # 1 TiB, 25/50/100/200/300 GB used: hours
    bench/run.sh --scale --size 256G --used 2G,4G,8G       # a moderate curve: minutes
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import make_disk  # noqa: E402  (a sibling script: the size parser)
from tests.scale import harness  # noqa: E402
from tests.scale.synthdisk import build  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
WORK = HERE / "work" / "scale"
# Room the images of one point need in the work folder: the full and the merged full coexist until
# the merge removes the chain (~0.7 of the data each after zstd), plus slack for the incremental.
ROOM_PER_USED = 1.6


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def point(size: int, used: int, seed: int) -> list[harness.Step]:
    free = shutil.disk_usage(WORK).free
    if free < ROOM_PER_USED * used + GiB:
        need = (ROOM_PER_USED * used + GiB) / GiB
        raise SystemExit(f"scale: {used / GiB:g} GiB used needs ~{need:.0f} GiB free in {WORK}, "
                         f"{free / GiB:.0f} GiB there")
    t = time.monotonic()
    layout = build(WORK, size, used, seed)
    log(f"[{used / GiB:g} GiB] disk layout ready in {time.monotonic() - t:.0f} s: "
        f"{len(layout.extents)} runs, {layout.synthetic_bytes / GiB:.2f} GiB synthetic")
    steps = harness.run(layout, WORK / "run")
    shutil.rmtree(WORK / "run" / "backups", ignore_errors=True)
    for s in steps:
        log(f"[{used / GiB:g} GiB] {s.name}: {s.wall:.1f} s, peak RSS {s.peak_rss / MiB:.0f} MiB, "
            f"manifest {s.manifest_bytes / 1024:.0f} KiB")
    return steps


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def report(size: int, points: list[tuple[int, list[harness.Step]]], elapsed: float) -> str:
    lines = [f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
             f"machine: {os.cpu_count()} cores, {platform.platform()}, "
             f"load average at the end {os.getloadavg()[0]:.2f}",
             f"disk: {size / GiB:.0f} GiB synthetic (FUSE, content generated on read), NTFS, default level; "
             "peak RSS is each process's own (GNU time); 'read' is what the source served", "",
             "| used GiB | run | wall s | cpu s | read GiB | read MB/s | stored MiB | image MiB "
             "| manifest KiB | manifest / stored | peak RSS MiB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for used, steps in points:
        for s in steps:
            read = "" if s.read_bytes is None else f"{s.read_bytes / GiB:.2f}"
            rate = "" if s.read_bytes is None else f"{s.read_bytes / s.wall / 1e6:.0f}"
            share = f"{s.manifest_bytes / s.stored_bytes:.1%}" if s.stored_bytes else ""
            lines.append(f"| {used / GiB:g} | {s.name} | {s.wall:.1f} | {s.cpu:.1f} | {read} | {rate} | "
                         f"{s.stored_bytes / MiB:.1f} | {s.image_bytes / MiB:.1f} | "
                         f"{s.manifest_bytes / 1024:.0f} | {share} | {s.peak_rss / MiB:.0f} |")
    if len(points) > 1:
        xs = [u / GiB for u, _ in points]
        lines.append("")
        for name in ("full", "incremental", "verify", "restore", "merge"):
            st = [next(s for s in steps if s.name == name) for _, steps in points]
            manifest = slope(xs, [s.manifest_bytes / 1024 for s in st])
            rss = slope(xs, [s.peak_rss / MiB for s in st])
            lines.append(f"- {name}: per GiB used, manifest {manifest:+.0f} KiB, peak RSS {rss:+.1f} MiB, "
                         f"wall {slope(xs, [s.wall for s in st]):+.2f} s")
    lines += ["", f"total {elapsed:.0f} s", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="scale bench: full, incremental and merge of a large synthetic "
                                             "disk (see bench/README.md)")
    ap.add_argument("--size", default="1T", help="disk size (default 1T)")
    ap.add_argument("--used", default="25G,50G,100G,200G,300G",
                    help="comma-separated used sizes, one point each (default 25G,50G,100G,200G,300G)")
    ap.add_argument("--seed", type=int, default=1)
    if os.geteuid() != 0:
        ap.error("needs root (loop devices, mkntfs, FUSE)")
    a = ap.parse_args(argv)
    size = make_disk.parse_size(a.size)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    points = []
    for text in a.used.split(","):
        used = make_disk.parse_size(text)
        points.append((used, point(size, used, a.seed)))
    text = report(size, points, time.monotonic() - started)
    print(text)
    (HERE / "work" / "scale-results.md").write_text(text)
    log(f"(also written to {HERE / 'work' / 'scale-results.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
