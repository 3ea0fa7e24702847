"""Browsing bench: a folder of many small files and a large file copied out of `rescue mount` and by
`rescue extract`, against ntfs-3g reading the same files from the original disk, in one run.

    bench/run.sh --browse [--rounds 2] [--keep]        (as root; ~2 min, ~1 GiB in bench/work)

The disk (built once, cached as bench/work/browse-disk-v1.img): 1.5 GiB sparse, MBR, one NTFS partition
at 1 MiB, written through ntfs-3g: a folder ``Users/bench/Documents/Browse`` of ~450 files of
4 KiB-1 MiB (log-uniform, ~80 MB; text, PE-like binaries and incompressible media, as in
bench/make_disk.py), each written between files of other folders so the folder's data is scattered
over the volume as years of use leave it, and a 256 MiB file (``Users/bench/Videos/big.mkv``, media
and binary blocks). It is backed up encrypted at the default level with `rescue backup` (every run:
the image format may change between runs).

Then the backing files are read once (page cache warm below both sides: the disk image, the backup's
files), and each measurement runs on a fresh mount (the loop devices' and FUSE files' page caches go
with it), ``--rounds`` times alternating sides, keeping each side's best:

- ntfs-3g: `losetup -r` of the partition + `ntfs-3g -o ro` (tests/ntfs3g.py's helpers);
- rescue mount: `rescue mount` (the CLI, encrypted image; our FUSE server + loop + ntfs-3g);
- first byte: from starting the mount command to the first 4 KiB of a file of the folder;
- folder: `cp -r` of the folder into tmpfs (/dev/shm), right after the first byte;
- large file: `cat` of the large file to /dev/null on another fresh mount;
- extract: `rescue extract` of the folder into tmpfs, the whole command, against ntfs-3g's whole
  operation (attach, mount, `cp -r`, unmount, detach);
- memory: the mount server's peak RSS (VmHWM) after the copies, and `rescue extract`'s (GNU time).

``--baseline DIR`` (a tree of an older commit: ``git archive COMMIT | tar -x -C DIR``) measures its
`rescue mount` and `rescue extract` too, in the same rounds, on the same backup: before/after in one run.

Prints a table, the ratios ours / ntfs-3g and PASS/FAIL against issue 12's targets, the load average
before each measurement (the machine is shared: compare only figures of one run), and writes the same
to bench/work/browse-results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from make_disk import Content  # noqa: E402
from tests.ntfs3g import attached, mounted_ntfs  # noqa: E402

MiB = 1 << 20
WORK = ROOT / "bench" / "work"
DISK_VERSION = 1  # bump when the recipe changes, so a stale cached disk is rebuilt
DISK_SIZE = 1536 * MiB
PART_START = MiB
PART_SIZE = DISK_SIZE - 2 * MiB
FOLDER = "Users/bench/Documents/Browse"
BIG = "Users/bench/Videos/big.mkv"
BIG_SIZE = 256 * MiB
FOLDER_BYTES = 80 * MiB
PASSWORD = b"browse-bench-password"
SHM = Path("/dev/shm")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write(path: Path, data: Callable[[int], bytes], size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb", buffering=0) as f:
        left = size
        while left:
            k = min(4 * MiB, left)
            f.write(data(k))
            left -= k


def build_disk() -> Path:
    path = WORK / f"browse-disk-v{DISK_VERSION}.img"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    with open(tmp, "wb") as f:
        f.truncate(DISK_SIZE)
    subprocess.run(["sfdisk", "--quiet", str(tmp)], check=True, capture_output=True, text=True,
                   input=f"label: dos\nlabel-id: 0x0b205e00\nstart={PART_START // 512}, size={PART_SIZE // 512}, "
                         "type=7, bootable\n")
    with attached(tmp, PART_START, PART_SIZE, readonly=False) as dev:
        subprocess.run(["mkntfs", "-f", "-q", "-L", "BROWSE", "-p", str(PART_START // 512), "-H", "255", "-S", "63",
                        dev], check=True, capture_output=True)
    content = Content(12)
    rng = random.Random(12)
    kinds = (content.text, content.binary, content.noise)
    with mounted_ntfs(tmp, PART_START, PART_SIZE, readonly=False) as mnt:
        total, i = 0, 0
        while total < FOLDER_BYTES:
            size = int(2 ** rng.uniform(12, 20))  # 4 KiB .. 1 MiB, most files small
            write(mnt / FOLDER / f"doc{i:04d}.{('txt', 'dll', 'jpg')[i % 3]}", kinds[i % 3], size)
            # Files of other folders written in between: the folder's clusters are not one run.
            for j in range(rng.randint(0, 2)):
                write(mnt / f"Windows/System32/x{i:04d}{j}.dll", content.binary, int(2 ** rng.uniform(12, 19)))
            total += size
            i += 1
        big = lambda n: content.noise(n) if rng.random() < 0.5 else content.binary(n)  # noqa: E731
        write(mnt / BIG, big, BIG_SIZE)
    os.rename(tmp, path)
    log(f"built {path}: {i} files, {total / MiB:.0f} MiB in {FOLDER}")
    return path


def rescue(*args: str, timed: bool = False, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rescue", *args]
    if timed:  # GNU time prints the peak RSS (KiB) of the command's own process on its last stderr line
        cmd = ["/usr/bin/time", "-f", "%M", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})


def warm(*paths: Path) -> None:
    for p in paths:
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
            with open(f, "rb") as fh:
                while fh.read(8 * MiB):
                    pass


def first_byte(path: Path) -> None:
    with open(path, "rb") as f:
        f.read(4096)


def cp_folder(src: Path) -> float:
    dst = Path(tempfile.mkdtemp(prefix="browse-", dir=SHM))
    try:
        t = time.monotonic()
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        return time.monotonic() - t
    finally:
        shutil.rmtree(dst)


def cat_file(src: Path) -> float:
    t = time.monotonic()
    subprocess.run(f"cat '{src}' > /dev/null", shell=True, check=True)
    return time.monotonic() - t


@contextmanager
def ntfs3g_side(disk: Path) -> Iterator[Path]:
    with mounted_ntfs(disk, PART_START, PART_SIZE) as mnt:
        yield mnt


@contextmanager
def rescue_side(folder: Path, pwfile: Path, peak: list[int], root: Path = ROOT) -> Iterator[Path]:
    mp = Path(tempfile.mkdtemp(prefix="browse-mnt-"))
    try:
        rescue("mount", "--password-file", str(pwfile), str(folder), str(mp), root=root)
        try:
            yield mp / "p1"
        finally:
            pid = json.loads((mp / ".raw" / "mount.json").read_text())["pid"]
            with open(f"/proc/{pid}/status") as f:
                peak.append(next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) // 1024)
            rescue("umount", str(mp), root=root)
    finally:
        mp.rmdir()


def measure(side: Callable[[], object], probe: str) -> dict[str, float]:
    """First byte and folder copy on one fresh mount, the large file on another."""
    out: dict[str, float] = {"load": os.getloadavg()[0]}
    t0 = time.monotonic()
    with side() as root:  # type: ignore[attr-defined]
        first_byte(root / probe)
        out["first_byte"] = time.monotonic() - t0
        out["folder"] = cp_folder(root / FOLDER)
    with side() as root:  # type: ignore[attr-defined]
        out["big"] = cat_file(root / BIG)
    return out


def ntfs3g_extract(disk: Path) -> float:
    """ntfs-3g's whole 'get this folder out': attach, mount, copy, unmount, detach."""
    dst = Path(tempfile.mkdtemp(prefix="browse-", dir=SHM))
    try:
        t = time.monotonic()
        with mounted_ntfs(disk, PART_START, PART_SIZE) as mnt:
            subprocess.run(["cp", "-r", str(mnt / FOLDER), str(dst)], check=True)
        return time.monotonic() - t
    finally:
        shutil.rmtree(dst)


def rescue_extract(folder: Path, pwfile: Path, root: Path = ROOT) -> tuple[float, int]:
    dst = Path(tempfile.mkdtemp(prefix="browse-", dir=SHM))
    try:
        t = time.monotonic()
        r = rescue("extract", "--password-file", str(pwfile), str(folder), FOLDER, "--to", str(dst), timed=True,
                   root=root)
        return time.monotonic() - t, int(r.stderr.strip().splitlines()[-1]) // 1024
    finally:
        shutil.rmtree(dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the backup (bench/work/browse-img)")
    ap.add_argument("--folder", type=Path, default=None, help="use this backup of the disk instead of making one")
    ap.add_argument("--baseline", type=Path, default=None, help="also measure the rescue of this tree (an older commit)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("browse: run as root (loop devices, FUSE)")
        return 3
    disk = build_disk()
    pwfile = WORK / "browse-password.txt"
    pwfile.write_bytes(PASSWORD)
    folder = args.folder
    made = folder is None
    if folder is None:
        folder = WORK / "browse-img"
        shutil.rmtree(folder, ignore_errors=True)
        t = time.monotonic()
        rescue("backup", "--password-file", str(pwfile), str(disk), str(folder))
        log(f"backed up in {time.monotonic() - t:.1f} s")
    try:
        warm(disk, folder)
        with ntfs3g_side(disk) as mnt:
            files = sorted((mnt / FOLDER).iterdir())
            nfiles, fbytes = len(files), sum(f.stat().st_size for f in files)
            probe = str(files[len(files) // 2].relative_to(mnt))
        peaks: dict[str, list[int]] = {"rescue mount": [], "baseline mount": []}
        sides = {"ntfs-3g": lambda: ntfs3g_side(disk),
                 "rescue mount": lambda: rescue_side(folder, pwfile, peaks["rescue mount"])}
        extractors: dict[str, Callable[[], tuple[float, int]]] = {
            "rescue extract": lambda: rescue_extract(folder, pwfile)}
        if args.baseline:
            base = args.baseline.resolve()
            sides["baseline mount"] = lambda: rescue_side(folder, pwfile, peaks["baseline mount"], base)
            extractors["baseline extract"] = lambda: rescue_extract(folder, pwfile, base)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
        ext: dict[str, list[float]] = {"ntfs-3g": [], **{k: [] for k in extractors}}
        ext_peak: dict[str, list[int]] = {k: [] for k in extractors}
        for r in range(args.rounds):
            for name, side in sides.items():
                runs[name].append(measure(side, probe))
                log(f"round {r + 1} {name}: {runs[name][-1]}")
            ext["ntfs-3g"].append(ntfs3g_extract(disk))
            for name, extract in extractors.items():
                secs, kib = extract()
                ext[name].append(secs)
                ext_peak[name].append(kib)
            log(f"round {r + 1} extract: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in ext.items()))
    finally:
        if made and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    best = {k: {m: min(x[m] for x in v) for m in ("first_byte", "folder", "big")} for k, v in runs.items()}
    n3, e3 = best["ntfs-3g"], min(ext["ntfs-3g"])
    big_mib = BIG_SIZE / MiB
    loads = ", ".join(format(x["load"], ".2f") for r in range(args.rounds) for v in runs.values() for x in v[r:r + 1])
    lines = [
        f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, rounds {args.rounds} (best of each), "
        f"load before each measurement: {loads}",
        f"folder: {nfiles} files, {fbytes / MiB:.1f} MiB; large file {big_mib:.0f} MiB; image encrypted, default level",
        "",
        "| | first byte s | folder cp -r s | folder MiB/s | large file s | large MiB/s | extract s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| ntfs-3g (source disk) | {n3['first_byte']:.3f} | {n3['folder']:.3f} | {fbytes / MiB / n3['folder']:.0f} "
        f"| {n3['big']:.3f} | {big_mib / n3['big']:.0f} | {e3:.3f} | |",
    ]
    for who, ex in (("rescue mount", "rescue extract"), ("baseline mount", "baseline extract")):
        if who not in best:
            continue
        us, eu = best[who], min(ext[ex])
        name = "rescue (this tree)" if who == "rescue mount" else f"rescue ({args.baseline})"
        lines.append(f"| {name} | {us['first_byte']:.3f} | {us['folder']:.3f} | {fbytes / MiB / us['folder']:.0f} "
                     f"| {us['big']:.3f} | {big_mib / us['big']:.0f} | {eu:.3f} "
                     f"| mount {max(peaks[who])}, extract {max(ext_peak[ex])} |")
    lines.append("")
    for who, ex in (("rescue mount", "rescue extract"), ("baseline mount", "baseline extract")):
        if who not in best:
            continue
        us, eu = best[who], min(ext[ex])
        peak = max(peaks[who] + ext_peak[ex])
        lines.append(f"{'this tree' if who == 'rescue mount' else 'baseline'}:")
        for what, value, ok in [
            ("folder out of rescue mount <= 2x ntfs-3g", us["folder"] / n3["folder"], us["folder"] <= 2 * n3["folder"]),
            ("rescue extract of it <= 2x ntfs-3g (mount+cp+umount)", eu / e3, eu <= 2 * e3),
            ("large file rate >= 0.5x ntfs-3g (time ratio <= 2)", us["big"] / n3["big"], us["big"] <= 2 * n3["big"]),
            ("first byte < 1 s", us["first_byte"], us["first_byte"] < 1.0),
            ("memory <= 150 MiB (mount server, extract)", peak, peak <= 150),
        ]:
            lines.append(f"- {what}: {value:.2f} {'PASS' if ok else 'FAIL'}")
    text = "\n".join(lines)
    print(text)
    (WORK / "browse-results.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
