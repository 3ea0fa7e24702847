"""R-17: Ctrl-C (SIGINT) to a running `rescue backup` or `rescue verify`.

A backup interrupted in any phase (planning, holding the lock, writing volumes, at random moments in
the data phase) must exit 130 with the single line "rescue: error: Interrupted: ...", remove its files
and its lock, and leave the earlier image byte-identical; an interrupted verify exits 130 and
changes nothing in the folder (names, sizes, times, contents).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.progress import Progress
from tests.crash.crashlib import (LOCK, dense_disk, folder_state, has_open, has_open_file_under, ids_in,
                                  image_files, one_error_line, read_bytes, snapshot, start_rescue, wait_until,
                                  written_bytes)

SEED = int(os.environ.get("CRASH_SEED", "20261125"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("sigint")
    src = dense_disk(base / "src.img")
    folder = base / "bk"
    earlier = backup(str(src), str(folder), BackupOptions(level=1), Progress()).image_id
    return src, folder, earlier


def interrupted(proc: subprocess.Popen[str], what: str) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"{what}: exit {proc.returncode}: {err}"
    line = one_error_line(err)
    assert line.startswith("rescue: error: Interrupted"), line
    return line


def _partial_in(folder: Path) -> bool:
    return any(n.endswith(".partial") for n in os.listdir(folder))


POINTS = ["source open", "lock taken", "first volume started", "random +0", "random +1", "random +2"]


@pytest.mark.parametrize("point", POINTS)
def test_sigint_backup(point: str, setup: tuple[Path, Path, str]) -> None:
    """# guards R-17 (backup)"""
    src, folder, earlier = setup
    rnd = random.Random(f"{SEED}-{point}")
    before = snapshot(folder, [earlier])
    proc = start_rescue("backup", str(src), str(folder), "--level", "15", "--split", "8M")
    try:
        if point == "source open":
            wait_until(lambda: has_open(proc.pid, src), 30, "the source to be opened", proc)
        elif point == "lock taken":
            wait_until(lambda: (folder / LOCK).exists(), 30, "the lock", proc)
        else:
            wait_until(lambda: _partial_in(folder), 30, "the first volume file", proc)
            if point.startswith("random"):
                # Interrupt on an event, not after a delay (a fast machine would finish first): once the
                # backup has written a random share of what the earlier image of the same disk holds, each
                # draw in its own quarter, all well before the end of its data phase.
                i = int(point[-1])
                total = sum((folder / n).stat().st_size for n in image_files(folder, earlier))
                share = rnd.uniform(0.05 + 0.23 * i, 0.05 + 0.23 * (i + 1))
                print(f"R-17 seed {SEED}: SIGINT once {share:.0%} of {total} bytes are written")
                wait_until(lambda: written_bytes(proc.pid) >= share * total, 60,
                           f"{share:.0%} of the image to be written", proc)
        interrupted(proc, f"backup SIGINT at {point}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ids_in(folder) == {earlier}, f"{point}: files left {sorted(os.listdir(folder))}"
    assert not (folder / LOCK).exists()
    assert snapshot(folder, [earlier]) == before


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_sigint_verify_changes_nothing(share: float, setup: tuple[Path, Path, str]) -> None:
    """# guards R-17 (verify)"""
    src, folder, earlier = setup
    state = folder_state(folder)
    total = sum((folder / n).stat().st_size for n in image_files(folder, earlier))
    proc = start_rescue("verify", str(folder), "--image", earlier)
    try:
        # Once it holds a file of the folder open it is past start-up, inside the verify; then it is
        # interrupted on an event (a share of the image read), not after a delay a fast machine outruns.
        wait_until(lambda: has_open_file_under(proc.pid, folder), 30, "verify to open the image", proc,
                   interval=0.0005)
        start = read_bytes(proc.pid)
        wait_until(lambda: read_bytes(proc.pid) - start >= share * total, 30, f"{share:.0%} of the image read",
                   proc, interval=0.0005)
        interrupted(proc, f"verify SIGINT after {share:.0%} read")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert folder_state(folder) == state
