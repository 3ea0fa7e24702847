"""R-12: power cuts during backup, incremental, merge, prune and restore.

The backup folder (or, for restore, the folder holding the target disk file) is served by
tests/crash/powercut_fuse.py, which keeps apart what the engine made durable. The job runs in-process
in a forked child; at a chosen count of mutating operations the power goes: that operation and all
later ones fail, the child is killed with SIGKILL, and of what was not yet durable a random subset
survives. "Power on" is the folder made of what survived. For each job, an uncut run counts its
operations, and cut points are drawn spread over that count (stratified, seeded: CRASH_SEED).

Checked at every cut: every image committed before is byte-identical (or, for merge and prune, absent
only where the job was there to remove it, never altered); an image listed complete verifies, as does
its parent; the latest committed image resolves; after a restore cut, a target whose partition
table survived is either untouched or bit-exact. Then the next run works: backup, merge and prune run
again on each power-on folder directly (no harness) and must succeed; restore goes on from each
power-on target (each run starts where the last cut left it), and a final uncut run must finish it
bit-exact.

How faithful it is. Modelled: writes and truncations durable only after fsync/fdatasync of that file;
creates, renames and unlinks durable only after an fsync of the folder (stricter than ext4, whose
journal often carries a new file's name with the file's fsync); of the unsynced writes and name
operations, at half the cuts a random subset survives (as a disk's volatile cache and the elevator
reorder them), applied in their order; at a quarter only the newest pending write of each file and
the last name operation (the worst order for a "data first, then the table" rule: the last cut is
always one of these); at the rest nothing. Not modelled: writes torn inside one write() call (a
sector half old, half new), a disk that acknowledges a flush it did not do (tests/crash/liar_fuse.py
covers lying targets), data damaged in sectors that were not being written, metadata such as times
and sizes lost apart from the data, and the page cache (every write reaches the filesystem at once:
direct_io). A restore target here is a file in that folder written with or without O_DIRECT: either
way only a following fsync, which the target session issues, makes its writes durable.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.prune import Policy, prune
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.progress import Progress
from tests.crash.crashlib import sha256_file, snapshot
from tests.crash.fuseshim import need_fuse
from tests.crash.powercut import CutRun, run_cut, survival
from tests.images import small_disk

SEED = int(os.environ.get("CRASH_SEED", "20261207"))
SPLIT = 8 << 20  # two volumes per image: a volume commit inside the data phase
CUTS = {"backup": 12, "incremental": 12, "merge": 10, "prune": 8, "restore": 12}  # 54 in all


def full(src: Path) -> Callable[[Path], None]:
    return lambda folder: _backup(src, folder, "full")


def incremental(src: Path) -> Callable[[Path], None]:
    return lambda folder: _backup(src, folder, "incremental")


def _backup(src: Path, folder: Path, mode: str) -> None:
    backup(str(src), str(folder), BackupOptions(level=1, split=SPLIT, mode=mode), Progress())


def cut_points(n: int, k: int, rnd: random.Random) -> list[int]:
    """k cut points spread over n operations: one drawn in each of k - 1 equal strata, and the last
    operation (after the commit: what the commit relied on must all be durable by then)."""
    return sorted({min(n - 2, int((n - 1) * (i + rnd.random()) / (k - 1))) for i in range(k - 1)} | {n - 1})


def complete_ids(folder: Path) -> dict[str, str | None]:
    """id -> parent of every image listed complete."""
    return {e.id: e.parent for e in Repository(str(folder)).list_images() if e.complete}


def check_folder(folder: Path, before: dict[str, dict[str, str]], may_go: set[str], where: str) -> set[str]:
    """The invariants of a power-on folder; returns the new images that are complete (all verified)."""
    listed = complete_ids(folder)
    for image_id, files in before.items():
        now = snapshot(folder, [image_id])
        if image_id in listed:
            assert now == files, f"{where}: committed image {image_id} altered"
        else:
            assert image_id in may_go, f"{where}: committed image {image_id} lost ({sorted(now)} left)"
            assert all(now[n] == files[n] for n in now), f"{where}: removed image {image_id} altered"
            # Removal takes the manifest first: what is left is an unfinished image, never a damaged one.
            assert f"{image_id}.manifest" not in now, f"{where}: {image_id} kept its manifest, lost volumes"
    for image_id, parent in listed.items():
        assert parent is None or parent in listed, f"{where}: {image_id} listed complete, parent {parent} not"
    new = set(listed) - set(before)
    for image_id in new:
        assert verify(str(folder), image_id, lambda: None, Progress()).chunks > 0, f"{where}: {image_id}"
    if listed:
        Repository(str(folder)).resolve(None)  # the latest committed image is sound: never a damaged one
    return new


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A source disk, the same disk changed (for incrementals), and backup folders made from them."""
    need_fuse()
    d = tmp_path_factory.mktemp("powercut")
    src = small_disk(d / "src.img")
    changed = d / "changed.img"
    shutil.copyfile(src, changed)
    with open(changed, "r+b") as f:
        for off in (1 << 20, 40 << 20, 70 << 20):  # the first partition's boot area and the raw one
            f.seek(off + 4096)
            f.write(random.Random(off).randbytes(64 << 10))
    one = d / "one"  # one full image
    _backup(src, one, "full")
    return {"dir": d, "src": src, "changed": changed, "one": one}


def test_power_cut_during_full_backup(disks: dict[str, Path], tmp_path: Path) -> None:
    """# guards R-12"""
    base = tmp_path / "base"
    shutil.copytree(disks["one"], base)
    job = full(disks["src"])
    ops, runs = _repeat("backup", base, job, job, set(), random.Random(SEED), tmp_path)
    _report("backup", ops, runs)


def test_power_cut_during_incremental(disks: dict[str, Path], tmp_path: Path) -> None:
    """# guards R-12"""
    base = tmp_path / "base"
    shutil.copytree(disks["one"], base)
    job = incremental(disks["changed"])
    ops, runs = _repeat("incremental", base, job, job, set(), random.Random(SEED + 1), tmp_path)
    _report("incremental", ops, runs)


def _repeat(name: str, base: Path, job: Callable[[Path], None], next_job: Callable[[Path], None],
            may_go: set[str], rnd: random.Random, tmp_path: Path) -> tuple[int, list[CutRun]]:
    """Cuts of a job that removes images, each from the same start; ``next_job`` then runs uncut on
    the power-on folder (directly, no harness) and must succeed."""
    before = {i: snapshot(base, [i]) for i in complete_ids(base)}
    first = run_cut(base, tmp_path / "uncut", job, -1, "none")
    assert first.exit_code == 0 and not first.cut, first.error
    runs: list[CutRun] = []
    cuts = cut_points(first.ops, CUTS[name], rnd)
    for k, cut in enumerate(cuts):
        survive = survival(k, len(cuts), SEED)
        r = run_cut(base, tmp_path / f"cut{k}", job, cut, survive)
        where = f"{name} cut at operation {cut} of {first.ops} ({survive} survived)"
        assert r.cut, f"{where}: the job ended before the cut ({r.exit_code}: {r.error})"
        check_folder(r.output, before, may_go, where)
        next_job(r.output)
        check_folder(r.output, before, may_go, f"{where}, then run again")
        runs.append(r)
    return first.ops, runs


def test_power_cut_during_merge(disks: dict[str, Path], tmp_path: Path) -> None:
    """# guards R-12"""
    base = tmp_path / "base"
    shutil.copytree(disks["one"], base)
    _backup(disks["changed"], base, "incremental")
    chain = set(complete_ids(base))
    point = Repository(str(base)).resolve(None)

    def job(folder: Path) -> None:
        merge(str(folder), point, lambda: None, Progress(), split=SPLIT)

    def next_job(folder: Path) -> None:
        # The merge again while its point is still there; once it was committed and the old chain
        # (partly) removed, the folder must simply go on: an incremental onto the merged image.
        if point in complete_ids(folder):
            job(folder)
        else:
            _backup(disks["src"], folder, "incremental")

    ops, runs = _repeat("merge", base, job, next_job, chain, random.Random(SEED + 2), tmp_path)
    # Whatever the cut, the merged point stays restorable: its old chain or the merged image.
    for r in runs:
        listed = complete_ids(r.output)
        assert point in listed or any(i not in chain for i in listed), f"merge: {point} lost"
    _report("merge", ops, runs)


def test_power_cut_during_prune(disks: dict[str, Path], tmp_path: Path) -> None:
    """# guards R-12"""
    base = tmp_path / "base"
    shutil.copytree(disks["one"], base)
    time.sleep(1.1)  # image times have a resolution of one second: keep the order unambiguous
    _backup(disks["changed"], base, "incremental")
    time.sleep(1.1)
    _backup(disks["src"], base, "full")
    ids = [e.id for e in Repository(str(base)).list_images()]
    assert len(ids) == 3
    old = set(ids[:2])

    def job(folder: Path) -> None:
        prune(str(folder), Policy(keep_last=1), dry_run=False)

    ops, runs = _repeat("prune", base, job, job, old, random.Random(SEED + 3), tmp_path)
    assert ops >= 4  # two images of files and folder syncs: room for cuts between them
    _report("prune", ops, runs)


def test_power_cut_during_restore(disks: dict[str, Path], tmp_path: Path) -> None:
    """# guards R-12"""
    folder = disks["one"]
    src = disks["src"]
    start = tmp_path / "start"
    start.mkdir()
    target = start / "disk.img"
    with open(target, "wb") as f:
        f.truncate(src.stat().st_size)
        f.write(b"\0" * 446 + bytes.fromhex("80" + "00" * 3 + "07" + "00" * 3) + (2048).to_bytes(4, "little")
                + (40960).to_bytes(4, "little") + b"\0" * 48 + b"\x55\xaa")  # another disk's table
    untouched = sha256_file(target)

    def job(mnt: Path) -> None:
        execute_restore(plan_restore(str(folder), None, str(mnt / "disk.img"), lambda: None, Progress()),
                        Progress())

    first = run_cut(start, tmp_path / "uncut", job, -1, "none")
    assert first.exit_code == 0 and not first.cut, first.error
    expected = sha256_file(first.output / "disk.img")
    assert expected == sha256_file(src)
    rnd = random.Random(SEED + 4)
    runs: list[CutRun] = []
    state = start
    tables = 0
    cuts = cut_points(first.ops, CUTS["restore"], rnd)
    for k, cut in enumerate(cuts):
        survive = survival(k, len(cuts), SEED)
        r = run_cut(state, tmp_path / f"cut{k}", job, cut, survive)
        where = f"restore cut at operation {cut} of {first.ops} ({survive} survived)"
        assert r.cut, f"{where}: the job ended before the cut ({r.exit_code}: {r.error})"
        disk = r.output / "disk.img"
        assert disk.stat().st_size == src.stat().st_size, where
        with open(disk, "rb") as g:
            g.seek(510)
            signature = g.read(2)
        if signature == b"\x55\xaa":
            # A table means "a good disk": only the untouched target or a finished restore may show one.
            assert sha256_file(disk) in (untouched, expected), f"{where}: a table on a half-restored disk"
            tables += 1
        runs.append(r)
        state = r.output
    last = run_cut(state, tmp_path / "after", job, -1, "none")
    assert last.exit_code == 0, f"restore after the cuts failed: {last.error}"
    assert sha256_file(last.output / "disk.img") == expected, "the rerun restore is not bit-exact"
    print(f"R-12 restore: {tables} cuts left a partition table (untouched or finished target)")
    _report("restore", first.ops, runs)


def _report(name: str, ops: int, runs: list[CutRun]) -> None:
    dropped = sum(int(str(r.stats["writes"])) + int(str(r.stats["names"])) for r in runs)
    print(f"R-12 {name}: {len(runs)} cuts over {ops} operations (seed {SEED}); "
          f"{dropped} pending writes or name operations dropped in all")
    assert len(runs) >= min(CUTS[name], ops) - 1, f"{name}: too few distinct cut points ({len(runs)})"
