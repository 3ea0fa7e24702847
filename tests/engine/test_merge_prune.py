"""Merge (synthetic full) and prune; a kill at any moment leaves every committed point restorable."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.prune import Policy, prune
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.errors import Error
from core.progress import Progress
from tests.images import small_disk

ROOT = Path(__file__).resolve().parents[2]


def day(disk: Path, seed: int) -> None:
    """Scattered edits in the raw partition (bytes 40..90 MiB of small_disk) and one in the gap."""
    rnd = random.Random(seed)
    with open(disk, "r+b") as f:
        for _ in range(20):
            f.seek(rnd.randrange(40 << 20, 90 << 20))
            f.write(rnd.randbytes(rnd.randrange(100, 8000)))


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def restored(folder: Path, image: str | None, tmp: Path, size: int) -> str:
    t = tmp / "restored.img"
    t.unlink(missing_ok=True)
    with open(t, "wb") as f:
        f.truncate(size)
    execute_restore(plan_restore(str(folder), image, str(t), lambda: None, Progress()), Progress())
    return sha(t)


def make_chain(tmp: Path, modes: list[str]) -> tuple[Path, Path, list[tuple[str, str]]]:
    disk = small_disk(tmp / "d.img")
    folder = tmp / "bk"
    states = []
    for n, mode in enumerate(modes):
        if n:
            day(disk, n)
        r = backup(str(disk), str(folder), BackupOptions(mode=mode), Progress())
        states.append((r.image_id, sha(disk)))
    return disk, folder, states


def test_incremental_is_small_and_every_point_restores(tmp_path: Path) -> None:
    disk, folder, states = make_chain(tmp_path, ["full", "incremental", "differential", "incremental"])
    full = Repository(str(folder)).list_images()[0]
    for image_id, state in states:
        entry = next(i for i in Repository(str(folder)).list_images() if i.id == image_id)
        if entry.kind != "full":
            assert entry.bytes < 0.1 * full.bytes
        assert restored(folder, image_id, tmp_path, disk.stat().st_size) == state


def test_merge_latest_folds_whole_chain(tmp_path: Path) -> None:
    disk, folder, states = make_chain(tmp_path, ["full", "incremental", "incremental"])
    before = Repository(str(folder)).list_images()
    res = merge(str(folder), None, lambda: None, Progress())
    images = Repository(str(folder)).list_images()
    assert [i.id for i in images] == [res.image_id] and images[0].kind == "full"
    # the synthetic full stores all the data itself: its used bytes are the whole chain's, not the last
    # incremental's few
    assert images[0].summary["used_bytes"] >= max(i.summary["used_bytes"] for i in before if i.kind == "full")
    assert sorted(res.removed) == sorted(i for i, _ in states)
    assert restored(folder, None, tmp_path, disk.stat().st_size) == states[-1][1]
    verify(str(folder), None, lambda: None, Progress())


def test_merge_middle_point_keeps_what_later_images_need(tmp_path: Path) -> None:
    disk, folder, states = make_chain(tmp_path, ["full", "incremental", "incremental"])
    res = merge(str(folder), states[1][0], lambda: None, Progress())
    assert res.removed == [] and sorted(res.kept) == sorted([states[0][0], states[1][0]])
    assert restored(folder, res.image_id, tmp_path, disk.stat().st_size) == states[1][1]
    # "latest" is still the newest state, not the merged image of an older state
    assert Repository(str(folder)).resolve(None) == states[2][0]


def test_prune_keeps_chains_of_kept_points(tmp_path: Path) -> None:
    disk, folder, states = make_chain(tmp_path, ["full", "incremental", "incremental", "differential", "incremental"])
    dry = prune(str(folder), Policy(keep_last=2), dry_run=True)
    assert sorted(dry.delete) == sorted([states[1][0], states[2][0]])
    assert len(Repository(str(folder)).list_images()) == 5
    res = prune(str(folder), Policy(keep_last=2), dry_run=False)
    assert res.deleted == [states[2][0], states[1][0]]  # children before parents
    left = [i.id for i in Repository(str(folder)).list_images()]
    assert left == [states[0][0], states[3][0], states[4][0]]
    for image_id, state in (states[3], states[4]):
        assert restored(folder, image_id, tmp_path, disk.stat().st_size) == state


def test_prune_without_policy_refused(tmp_path: Path) -> None:
    (tmp_path / "bk").mkdir()
    with pytest.raises(Error):
        prune(str(tmp_path / "bk"), Policy(), dry_run=False)


def _all_committed_restorable(folder: Path) -> None:
    for entry in Repository(str(folder)).list_images():
        if entry.has_manifest:
            assert entry.complete, entry.error
            verify(str(folder), entry.id, lambda: None, Progress())


@pytest.mark.parametrize("command", ["merge", "prune", "incremental"])
def test_kill_at_many_points(tmp_path: Path, command: str) -> None:
    """SIGKILL `rescue merge`/`rescue prune`/`rescue backup --incremental` at many moments: every image
    that still has a manifest verifies with its whole chain, and a rerun succeeds."""
    disk, folder, states = make_chain(tmp_path, ["full", "incremental", "incremental", "incremental"])
    day(disk, 99)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = {"merge": ["merge", str(folder), "--image", states[2][0], "--level", "19"],
            "prune": ["prune", str(folder), "--keep-last", "1", "--yes"],
            "incremental": ["backup", str(folder), "--incremental", "--level", "19"]}[command]
    rnd = random.Random(11)
    for attempt in range(8):
        snapshot = tmp_path / f"snap{attempt}"
        subprocess.run(["cp", "-a", str(folder), str(snapshot)], check=True)
        argv = _argv(args, snapshot, disk)
        p = subprocess.Popen([sys.executable, "-m", "rescue", *argv], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.05, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        (snapshot / "rescue.lock").unlink(missing_ok=True)  # the killed process's lock (it is gone)
        _all_committed_restorable(snapshot)
        rerun = subprocess.run([sys.executable, "-m", "rescue", *argv], env=env, cwd=ROOT, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        _all_committed_restorable(snapshot)


def _argv(args: list[str], folder: Path, disk: Path) -> list[str]:
    """The command line with the folder replaced by ``folder`` (and the source disk for a backup)."""
    if args[0] == "backup":
        return ["backup", str(disk), str(folder), *args[2:]]
    return [args[0], str(folder), *args[2:]]
