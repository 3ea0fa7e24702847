"""Side-by-side benchmark: `rescue backup/restore` versus partclone.ntfs and ntfsclone piped through zstd.

Everything runs on one cached disk image (see make_disk.py), back to back, never in parallel, so the
ratios printed come from the same run on the same (shared, 2-core) machine. Each command's wall time
includes making its output durable (our tool fsyncs itself; for the others an fsync of the output file
or target device is added to the timed span), and peak RSS is each process's own, measured by the
launcher tests/scale/peak.py shares with the scale tests (GNU time starts each stage: a child of this
process would inherit its ~128 MiB high-water mark); for a pipeline the peaks of its processes are added
up (they run at the same time).

Page cache: warm for everyone. Before any timing, one untimed `ntfsclone --save-image -o /dev/null`
reads every used cluster through the partition's loop device, which fills both the loop device's cache
(read by partclone/ntfsclone) and the image file's cache (read by our tool). Output data is synced
after each run (untimed) so one tool's write-back never lands in the next one's timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import make_disk  # noqa: E402  (a sibling script, not a package)
from tests.scale.peak import read_peak, wrap  # noqa: E402  (run.sh puts the checkout on PYTHONPATH)

MiB = 1 << 20
PASSWORD = b"correct horse battery staple\n"


@dataclass
class Run:
    name: str
    kind: str  # backup | restore
    wall: float
    size: int | None
    rss: list[tuple[str, int]]  # (process, peak RSS bytes)
    cpu: float  # user + sys seconds of all processes
    load: float  # 1-minute load average just before the run
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rss_total(self) -> int:
        return sum(r for _, r in self.rss)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def pipeline(stages: list[list[str]], stdout_path: str | None, logdir: str, tag: str,
             env: dict[str, str] | None = None) -> tuple[float, list[tuple[str, int]], float, list[int], bytes]:
    """Run ``stages`` as a shell-less pipeline; returns (wall, [(name, maxrss)], cpu, exit codes, stdout)."""
    procs: list[subprocess.Popen[bytes]] = []
    reports: list[str] = []  # each stage's peak RSS, written by its launcher
    out_f = open(stdout_path, "wb") if stdout_path else None
    started = time.monotonic()
    try:
        prev = None
        for i, argv in enumerate(stages):
            last = i == len(stages) - 1
            err = open(os.path.join(logdir, f"{tag}.{i}.{os.path.basename(argv[0])}.stderr"), "wb")
            reports.append(os.path.join(logdir, f"{tag}.{i}.peak"))
            p = subprocess.Popen(wrap(argv, reports[-1]), stdin=prev, stdout=(out_f if (last and out_f) else subprocess.PIPE),
                                 stderr=err, env=env, cwd=ROOT)
            err.close()
            if prev is not None:
                prev.close()  # only the next stage holds the pipe now, so EOF/SIGPIPE propagate
            prev = p.stdout if not (last and out_f) else None
            procs.append(p)
        captured = b""
        if prev is not None:
            captured = prev.read()
            prev.close()
        rss: list[tuple[str, int]] = []
        cpu = 0.0
        codes: list[int] = []
        for p, argv, report in zip(procs, stages, reports):
            # The launcher's CPU includes the stage it waited for; its ru_maxrss is ours, inherited.
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            codes.append(p.returncode)
            rss.append((os.path.basename(argv[0] if argv[0] != sys.executable else "rescue"), read_peak(report)))
            cpu += ru.ru_utime + ru.ru_stime
        if out_f is not None:
            out_f.flush()
            os.fsync(out_f.fileno())
        wall = time.monotonic() - started
    finally:
        if out_f is not None:
            out_f.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return wall, rss, cpu, codes, captured


# Rounds of the restore comparison (see Bench.main).
ROUNDS = 2


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = make_disk.WORK
        self.out = os.path.join(self.work, "out")
        self.logs = os.path.join(self.work, "logs")
        self.loops: list[str] = []
        self.runs: list[Run] = []
        self.env = dict(os.environ, PYTHONPATH=ROOT)
        self.env.pop("RESCUE_PASSWORD", None)

    # -- loop devices ------------------------------------------------------------------------------

    def attach(self, path: str, read_only: bool) -> str:
        size = os.path.getsize(path) - make_disk.PART_START
        part = size // MiB * MiB
        dev = sh("losetup", "-f", "--show", *(["-r"] if read_only else []), "-o", str(make_disk.PART_START),
                 "--sizelimit", str(part), path)
        self.loops.append(dev)
        return dev

    def detach(self, dev: str) -> None:
        subprocess.run(["losetup", "-d", dev], check=False)
        if dev in self.loops:
            self.loops.remove(dev)

    def fresh_target(self, name: str) -> str:
        path = os.path.join(self.work, name)
        if os.path.exists(path):
            os.unlink(path)
        with open(path, "wb") as f:
            f.truncate(self.disk_size)
        return path

    # -- timed runs --------------------------------------------------------------------------------

    def timed(self, name: str, kind: str, stages: list[list[str]], stdout_path: str | None, size_of: str | None,
              sync_after: str | None = None, note: str = "") -> Run:
        subprocess.run(["sync"], check=False)  # untimed: earlier runs' write-back must not land in this one
        # This VM's host keeps flushing the guest's writes after the guest's sync returns (measured:
        # a run started right after a few GB were written took up to 1.5x as long); a pause lets
        # every run, ours and theirs alike, start on idle storage.
        time.sleep(self.args.settle)
        load = os.getloadavg()[0]
        log(f"[{name}] {' | '.join(' '.join(s) for s in stages)}{' > ' + stdout_path if stdout_path else ''}")
        wall, rss, cpu, codes, captured = pipeline(stages, stdout_path, self.logs, name.replace(" ", "_"), self.env)
        if sync_after:
            t = time.monotonic()
            fsync_path(sync_after)
            wall += time.monotonic() - t
        if any(codes):
            raise SystemExit(f"{name}: exit codes {codes}; see {self.logs}/{name.replace(' ', '_')}.*.stderr")
        run = Run(name, kind, wall, tree_size(size_of) if size_of else None, rss, cpu, load, note)
        if captured:
            try:
                run.extra = json.loads(captured)
            except ValueError:
                pass
        log(f"[{name}] {wall:.1f} s wall, {cpu:.1f} s cpu, "
            f"{'' if run.size is None else f'{run.size / MiB:.0f} MiB, '}peak RSS "
            f"{', '.join(f'{n} {r / MiB:.0f} MiB' for n, r in rss)}, load before {load:.2f}")
        self.runs.append(run)
        return run

    def rescue(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "rescue", *argv]

    # -- the benchmark -----------------------------------------------------------------------------

    def main(self) -> int:
        a = self.args
        size, data = make_disk.parse_size(a.size), make_disk.parse_size(a.data)
        pagefile = make_disk.parse_size(a.pagefile) if a.pagefile else min(512 * MiB, size // 16)
        hiberfil = make_disk.parse_size(a.hiberfil) if a.hiberfil else min(256 * MiB, size // 32)
        started = time.monotonic()
        disk = make_disk.build(size, data, a.seed, pagefile, hiberfil, log)
        self.disk_size = os.path.getsize(disk)
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        os.makedirs(self.logs, exist_ok=True)
        pw = os.path.join(self.work, "password.txt")
        with open(pw, "wb") as f:
            f.write(PASSWORD)
        lvl = str(a.level)
        try:
            src = self.attach(disk, read_only=True)
            log(f"source partition {src} (read-only); warming the page cache with an untimed ntfsclone pass")
            t = time.monotonic()
            subprocess.run(["ntfsclone", "--save-image", "-o", "-", src], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            log(f"  warm-up took {time.monotonic() - t:.1f} s; "
                f"{sh('fincore', '-b', '-n', '-o', 'RES', disk).strip()} bytes of the image are cached")
            ours = os.path.join(self.out, "rescue-plain")
            ours_enc = os.path.join(self.out, "rescue-enc")
            nc_file = os.path.join(self.out, "ntfsclone.img.zst")
            pc_file = os.path.join(self.out, "partclone.img.zst")
            zstd = ["zstd", f"-{lvl}", "-T2", "-q", "-c"]
            # Backups.
            ours_lvl = ["--level", str(a.our_level)] if a.our_level else []  # default: the tool's own
            self.timed("rescue backup", "backup", [self.rescue("backup", disk, ours, *ours_lvl, "--json")],
                       None, ours, note="unencrypted")
            self.timed("rescue backup enc", "backup",
                       [self.rescue("backup", disk, ours_enc, *ours_lvl, "--password-file", pw, "--json")],
                       None, ours_enc, note="AES-256-GCM, Argon2id KDF")
            self.timed("ntfsclone|zstd", "backup", [["ntfsclone", "--save-image", "-o", "-", src], zstd],
                       nc_file, nc_file)
            self.timed("partclone|zstd", "backup",
                       [["partclone.ntfs", "-c", "-s", src, "-o", "-", "-L", os.path.join(self.logs, "partclone.log")],
                        zstd], pc_file, pc_file)
            self.detach(src)
            # Restores, each onto a fresh sparse file of the disk's size, in ROUNDS interleaved rounds:
            # this VM's storage has moods (the host flushes earlier writes at its own pace), so each
            # tool keeps its best round; the table says so.
            for _ in range(ROUNDS):
                tgt = self.restores(disk, ours, ours_enc, pw, nc_file, pc_file)
            self.keep_best(("rescue restore", "rescue restore enc", "dd direct floor", "zstd -d|partclone -r",
                            "zstd -d|ntfsclone -r"))
            os.unlink(tgt)
            if not a.quick:
                self.more(disk, ours, ours_lvl)
        finally:
            for dev in list(self.loops):
                self.detach(dev)
            if not a.keep:
                shutil.rmtree(self.out, ignore_errors=True)
        report = self.report(disk, pagefile, hiberfil, time.monotonic() - started)
        print(report)
        with open(os.path.join(self.work, "last-results.md"), "w") as f:
            f.write(report)
        log(f"(also written to {os.path.join(self.work, 'last-results.md')})")
        return 0

    def restores(self, disk: str, ours: str, ours_enc: str, pw: str, nc_file: str, pc_file: str) -> str:
        """One round of the restore comparison; returns the last target file (to delete)."""
        tgt = self.fresh_target("target.img")
        self.timed("rescue restore", "restore", [self.rescue("restore", ours, tgt, "--yes", "--json")], None,
                   None, note="whole disk (MBR + partition)")
        if self.args.restore_encrypted:
            tgt = self.fresh_target("target.img")
            self.timed("rescue restore enc", "restore",
                       [self.rescue("restore", ours_enc, tgt, "--yes", "--password-file", pw, "--json")],
                       None, None, note="whole disk, encrypted image")
        # The storage's own floor: the restore's data bytes written straight to a file with O_DIRECT
        # and fsynced, by dd, no compression, no verification. No restore onto this storage can be
        # faster; the ratios to it say how much of a restore's time is the tool's own.
        ours_restore = next(x for x in self.runs if x.name == "rescue restore")
        plan = ours_restore.extra.get("plan")
        data_bytes = int(plan.get("data_bytes", 0)) if isinstance(plan, dict) else 0
        if data_bytes:
            tgt = self.fresh_target("floor.img")
            self.timed("dd direct floor", "floor",
                       [["dd", f"if={disk}", f"of={tgt}", "bs=4M", f"count={data_bytes // (4 * MiB)}",
                         "oflag=direct", "conv=fsync,notrunc", "status=none"]], None, None,
                       note="the restore's data bytes, raw, straight to this storage")
            os.unlink(tgt)
        for name, stages in (
                ("zstd -d|partclone -r", lambda dev: [["zstd", "-d", "-q", "-c", pc_file],
                                                      ["partclone.ntfs", "-r", "-s", "-", "-o", dev, "-L",
                                                       os.path.join(self.logs, "partclone-r.log")]]),
                ("zstd -d|ntfsclone -r", lambda dev: [["zstd", "-d", "-q", "-c", nc_file],
                                                      ["ntfsclone", "--restore-image", "--overwrite", dev, "-"]])):
            tgt = self.fresh_target("target.img")
            dev = self.attach(tgt, read_only=False)
            try:
                self.timed(name, "restore", stages(dev), None, None, sync_after=dev, note="partition only")
            finally:
                self.detach(dev)
        return tgt

    def keep_best(self, names: tuple[str, ...]) -> None:
        """Of several rounds of a run, keep the fastest (noted in the table)."""
        for name in names:
            runs = [x for x in self.runs if x.name == name]
            if len(runs) < 2:
                continue
            best = min(runs, key=lambda x: x.wall)
            best.note = f"{best.note}; best of {len(runs)}: " + ", ".join(f"{x.wall:.1f}" for x in runs)
            self.runs = [x for x in self.runs if x.name != name or x is best]

    def more(self, disk: str, ours: str, ours_lvl: list[str]) -> None:
        """More figures: an incremental after ~1 % of the files changed, a restore onto a
        disk of 0.6x the size (NTFS shrunk), and a clone beside partclone.ntfs -b."""
        # Incremental: a copy of the disk, changed like a day of use, backed up on top of the full image.
        day = os.path.join(self.work, "day.img")
        subprocess.run(["cp", "--sparse=always", "--reflink=auto", disk, day], check=True)
        changed = day_of_use(day, make_disk.PART_START, self.disk_size - make_disk.PART_START, self.args.seed)
        log(f"day of use: {changed}")
        # Warm like the full backup's source (one untimed read): the copy just written may have been
        # evicted by the gigabytes written since, and the incremental must not pay for that.
        subprocess.run(["cat", day], check=True, stdout=subprocess.DEVNULL)
        inc = self.timed("rescue backup incremental", "incremental",
                         [self.rescue("backup", day, ours, *ours_lvl, "--incremental", "--json")],
                         None, None, note=f"after {changed['files']} of {changed['total']} files changed")
        full = next(x for x in self.runs if x.name == "rescue backup")
        inc.size = int(inc.extra.get("stored_bytes", 0)) if isinstance(inc.extra, dict) else None
        os.unlink(day)
        # Restore onto a disk of 0.6x the size: the NTFS partition is shrunk by ntfsresize.
        small = os.path.join(self.work, "small.img")
        with open(small, "wb") as f:
            f.truncate(int(self.disk_size * 0.6) // MiB * MiB)
        self.timed("rescue restore 0.6x", "restore", [self.rescue("restore", ours, small, "--yes", "--json",
                                                                  "--scratch", self.work)],
                   None, None, note="onto 0.6x the size, NTFS shrunk, read back")
        os.unlink(small)
        # Clone, disk to disk, beside partclone.ntfs -b (device to device).
        tgt = self.fresh_target("clone.img")
        self.timed("rescue clone", "clone", [self.rescue("clone", disk, tgt, "--yes", "--json")], None, None,
                   note="whole disk, read back")
        tgt = self.fresh_target("clone.img")
        src = self.attach(disk, read_only=True)
        dev = self.attach(tgt, read_only=False)
        try:
            self.timed("partclone -b", "clone", [["partclone.ntfs", "-b", "-s", src, "-o", dev, "-L",
                                                  os.path.join(self.logs, "partclone-b.log")]], None, None,
                       sync_after=dev, note="partition only")
        finally:
            self.detach(dev)
            self.detach(src)
            os.unlink(tgt)
        log(f"incremental: {inc.wall / full.wall:.2f} x the full backup's time, "
            f"{(inc.size or 0) / (full.size or 1):.3f} x its size")

    def report(self, disk: str, pagefile: int, hiberfil: int, elapsed: float) -> str:
        r = {x.name: x for x in self.runs}
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
                   platform.processor())
        lines = [f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
                 f"machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}, "
                 f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / (1 << 30):.0f} GiB RAM, "
                 f"python {platform.python_version()}",
                 f"tools: {sh('zstd', '--version').split(',')[0].strip('* ')}; "
                 f"{subprocess.run(['partclone.ntfs', '--version'], capture_output=True, text=True).stdout.split(chr(10))[0].strip()}; "
                 f"{subprocess.run(['ntfsclone', '--version'], capture_output=True, text=True).stderr.split(chr(10))[0].strip()}",
                 f"disk: {os.path.basename(disk)} ({self.disk_size / (1 << 30):.1f} GiB sparse, "
                 f"{os.stat(disk).st_blocks * 512 / MiB:.0f} MiB allocated; pagefile.sys {pagefile // MiB} MiB, "
                 f"hiberfil.sys {hiberfil // MiB} MiB), zstd level {self.args.level} for the pipelines, rescue at "
                 f"{self.args.our_level or 'its default'}",
                 "page cache: warm for all (one untimed ntfsclone read pass first); outputs fsynced inside the "
                 "timed span; tools run back to back", "",
                 "| tool | wall s | cpu s | output MiB | peak RSS MiB | load before | note |",
                 "|---|---:|---:|---:|---:|---:|---|"]
        for x in self.runs:
            rss = f"{x.rss_total / MiB:.0f}" + (f" ({' + '.join(f'{n} {v / MiB:.0f}' for n, v in x.rss)})"
                                                if len(x.rss) > 1 else "")
            lines.append(f"| {x.name} | {x.wall:.1f} | {x.cpu:.1f} | "
                         f"{'' if x.size is None else f'{x.size / MiB:.0f}'} | {rss} | {x.load:.2f} | {x.note} |")
        lines.append("")
        for x in self.runs:
            res = x.extra.get("result") if isinstance(x.extra.get("result"), dict) else x.extra
            own = res.get("seconds") if isinstance(res, dict) else None
            if not own:
                continue
            facts = [f"the tool itself reports {own:.1f} s"]
            for key in ("read_bytes", "data_bytes", "stored_bytes", "written_bytes", "verified_bytes"):
                if isinstance(res.get(key), int):
                    facts.append(f"{key} {res[key] / MiB:.0f} MiB")
            if isinstance(res.get("phases"), dict):
                facts += [f"{k.replace('_', '-')} phase {v:.1f} s" for k, v in res["phases"].items()]
            lines.append(f"- {x.name}: {', '.join(facts)}")
        lines.append("")

        def ratio(a: str, b: str, attr: str) -> float | None:
            if a in r and b in r and getattr(r[b], attr):
                return getattr(r[a], attr) / getattr(r[b], attr)
            return None

        lines += ["| ratio | vs ntfsclone | vs partclone |", "|---|---:|---:|"]
        for label, ours, attr, nc, pc in (
                ("backup time (plain)", "rescue backup", "wall", "ntfsclone|zstd", "partclone|zstd"),
                ("backup time (encrypted)", "rescue backup enc", "wall", "ntfsclone|zstd", "partclone|zstd"),
                ("backup size (plain)", "rescue backup", "size", "ntfsclone|zstd", "partclone|zstd"),
                ("backup size (encrypted)", "rescue backup enc", "size", "ntfsclone|zstd", "partclone|zstd"),
                ("backup cpu (encrypted)", "rescue backup enc", "cpu", "ntfsclone|zstd", "partclone|zstd"),
                ("restore time", "rescue restore", "wall", "zstd -d|ntfsclone -r", "zstd -d|partclone -r"),
                ("restore cpu", "rescue restore", "cpu", "zstd -d|ntfsclone -r", "zstd -d|partclone -r")):
            a, b = ratio(ours, nc, attr), ratio(ours, pc, attr)
            lines.append(f"| {label} | {'' if a is None else f'{a:.2f}'} | {'' if b is None else f'{b:.2f}'} |")
        lines.append("")
        checks = []
        enc_t = ratio("rescue backup enc", "ntfsclone|zstd", "wall")
        enc_s = ratio("rescue backup enc", "ntfsclone|zstd", "size")
        rst = ratio("rescue restore", "zstd -d|partclone -r", "wall")
        ours_rss = max(x.rss_total for x in self.runs if x.name.startswith("rescue"))
        checks.append(("backup (encrypted) <= 0.6 x ntfsclone|zstd -3 -T2 wall", enc_t is not None and enc_t <= 0.6,
                       f"{enc_t:.2f}" if enc_t is not None else "n/a"))
        checks.append(("backup (encrypted) output <= ntfsclone|zstd output", enc_s is not None and enc_s <= 1.0,
                       f"{enc_s:.2f}" if enc_s is not None else "n/a"))
        checks.append(("restore <= 0.3 x zstd -d|partclone.ntfs -r wall", rst is not None and rst <= 0.3,
                       f"{rst:.2f}" if rst is not None else "n/a"))
        checks.append(("peak RSS of every rescue run < 150 MiB", ours_rss < 150 * MiB, f"{ours_rss / MiB:.0f} MiB"))
        inc_t = ratio("rescue backup incremental", "rescue backup", "wall")
        inc_s = ratio("rescue backup incremental", "rescue backup", "size")
        if inc_t is not None:
            checks.append(("incremental (~1 % of files changed) <= 0.2 x the full backup's time", inc_t <= 0.2,
                           f"{inc_t:.2f}"))
        if inc_s is not None:
            checks.append(("incremental <= 0.03 x the full backup's size", inc_s <= 0.03, f"{inc_s:.3f}"))
        floor = r.get("dd direct floor")
        if floor:
            for name in ("rescue restore", "rescue restore enc", "zstd -d|partclone -r", "zstd -d|ntfsclone -r"):
                if name in r:
                    lines.insert(-1, f"| {name} / dd direct floor (same bytes, raw) | | {r[name].wall / floor.wall:.2f} |")
        clone = ratio("rescue clone", "partclone -b", "wall")
        if clone is not None:
            lines.insert(-1, f"| clone time (ours incl. read-back / partclone -b) | | {clone:.2f} |")
        lines += ["| target | measured | result |", "|---|---:|---|"]
        lines += [f"| {t} | {m} | {'PASS' if ok else 'FAIL'} |" for t, ok, m in checks]
        lines += ["", f"total bench time {elapsed:.0f} s", ""]
        return "\n".join(lines)


def day_of_use(path: str, offset: int, size: int, seed: int) -> dict[str, int]:
    """~1 % of the files changed through ntfs-3g: scattered 4 KiB edits, appends, new files, deletions."""
    rng = random.Random(seed + 1)
    mnt = tempfile.mkdtemp(prefix="bench-day-")
    dev = sh("losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size // MiB * MiB), path)
    try:
        subprocess.run(["ntfs-3g", "-o", "rw", dev, mnt], check=True)
        try:
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(mnt) for f in fs
                           if f.lower() not in ("pagefile.sys", "hiberfil.sys"))
            picked = rng.sample(files, max(4, len(files) // 100))
            for i, p in enumerate(picked):
                n = os.path.getsize(p)
                if i % 4 == 0:
                    os.unlink(p)
                elif i % 4 == 1:
                    with open(p, "ab") as f:
                        f.write(rng.randbytes(rng.randrange(1024, 65536)))
                else:
                    with open(p, "r+b") as f:
                        for _ in range(3):
                            f.seek(rng.randrange(0, max(1, n - 4096)))
                            f.write(rng.randbytes(4096))
            for i in range(len(picked) // 4):
                with open(os.path.join(mnt, f"new-{seed}-{i}.txt"), "wb") as f:
                    f.write(rng.randbytes(rng.randrange(1024, 256 * 1024)))
        finally:
            subprocess.run(["umount", mnt], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
        os.rmdir(mnt)
    return {"files": len(picked), "total": len(files)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="rescue vs partclone/ntfsclone benchmark (see bench/README.md)")
    ap.add_argument("--size", default="8G", help="disk size (default 8G; e.g. 2G for a quick run)")
    ap.add_argument("--data", default="3000M", help="file data on the disk (default 3000M; e.g. 600M)")
    ap.add_argument("--pagefile", default=None, help="pagefile.sys size (default min(512M, size/16))")
    ap.add_argument("--hiberfil", default=None, help="hiberfil.sys size (default min(256M, size/32))")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each timed run (default 5)")
    ap.add_argument("--level", type=int, default=3, help="zstd level of the partclone/ntfsclone pipelines (default 3)")
    ap.add_argument("--our-level", type=int, default=None, help="--level for rescue (default: rescue's own default)")
    ap.add_argument("--restore-encrypted", action="store_true", help="also time restoring the encrypted image")
    ap.add_argument("--keep", action="store_true", help="keep the backups in bench/work/out")
    ap.add_argument("--quick", action="store_true", help="only the backup and restore comparison (no incremental, "
                                                          "restore-to-smaller and clone runs)")
    if os.geteuid() != 0:
        ap.error("needs root (loop devices, ntfs-3g)")
    return Bench(ap.parse_args(argv)).main()


if __name__ == "__main__":
    sys.exit(main())
