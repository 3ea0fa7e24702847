"""R-13: the backup folder runs out of space mid-backup (a small tmpfs as the destination).

The folder holds a small earlier image; backups of a real disk that cannot fit are run with the free
space set (by a filler file beside the folder) to land ENOSPC in different places: creating the lock,
inside the first volume, at random points, and exactly at the manifest (the volumes fit, the manifest
does not). Each must exit 10 with one line naming the folder, remove its files and lock, and leave
the earlier image intact; after the tmpfs is grown the next backup succeeds. The backups pass
--allow-ram: a folder in RAM is refused otherwise, and here it is on purpose.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from core.engine.backup import BackupOptions, backup
from core.progress import Progress
from tests.conftest import need_root_tools
from tests.crash.crashlib import LOCK, ids_in, one_error_line, snapshot
from tests.images import run_rescue, small_disk

SEED = int(os.environ.get("CRASH_SEED", "20261125"))
PAGE = 4096
RANDOM_PASSES = 3  # plus three placed passes: lock, first volume header, manifest


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    need_root_tools("mount", "umount")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(mnt: Path, free: int) -> None:
    """Leave exactly ``free`` bytes (whole pages) free on the tmpfs, with a filler file beside the folder."""
    filler = mnt / "filler"
    filler.unlink(missing_ok=True)
    take = free_bytes(mnt) - free
    assert take >= 0, (free_bytes(mnt), free)
    with open(filler, "wb") as f:
        if take:
            f.write(b"\xa5" * take)  # real pages, not a sparse hole: tmpfs only charges written pages
    assert free_bytes(mnt) == free, (free_bytes(mnt), free)


def pages(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def test_backup_into_full_folder(tmpfs: Path, tmp_path: Path) -> None:
    """# guards R-13"""
    print(f"R-13 seed {SEED} (replay: CRASH_SEED={SEED})")
    rnd = random.Random(SEED)
    folder = tmpfs / "bk"
    small = tmp_path / "small.bin"
    small.write_bytes(b"a small and very compressible source " * 50000)
    r = run_rescue("backup", str(small), str(folder), "--json", "--allow-ram")
    assert r.returncode == 0, r.stderr
    earlier = json.loads(r.stdout)["id"]
    before = snapshot(folder, [earlier])
    src = small_disk(tmp_path / "src.img")
    # The same backup on ordinary disk says how much room its volumes and manifest take.
    probe = backup(str(src), str(tmp_path / "probe"), BackupOptions(level=3), Progress())
    vol_room = sum(pages((tmp_path / "probe" / v).stat().st_size) for v in probe.volumes)
    manifest_room = pages((tmp_path / "probe" / f"{probe.image_id}.manifest").stat().st_size)
    assert vol_room + manifest_room + PAGE > free_bytes(tmpfs) > 0  # it cannot fit as things stand

    lock_room = PAGE
    passes: list[tuple[str, int]] = [("no room for the lock", 0), ("room for the lock only", lock_room)]
    passes += [(f"random {i}", pages(rnd.randrange(lock_room, min(vol_room, free_bytes(tmpfs)))))
               for i in range(RANDOM_PASSES)]
    manifest_pass = ("volumes fit, the manifest does not", lock_room + vol_room)
    for label, free in passes + [manifest_pass]:
        if label == manifest_pass[0]:
            # Grow the tmpfs so that the volumes fit exactly; the manifest's page is what is missing.
            (tmpfs / "filler").unlink(missing_ok=True)
            r2 = subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], capture_output=True, text=True)
            assert r2.returncode == 0, r2.stderr
        fill_to(tmpfs, free)
        r = run_rescue("backup", str(src), str(folder), "--level", "3", "--allow-ram")
        print(f"pass {label!r}: {free} bytes free -> exit {r.returncode}: {r.stderr.strip()}")
        assert r.returncode == 10, f"{label}: exit {r.returncode}: {r.stderr}"
        line = one_error_line(r.stderr)
        assert f"No space left in backup folder {folder}" in line, line
        if label == manifest_pass[0]:
            assert ".manifest" in line, f"ENOSPC was meant to hit the manifest: {line}"
        assert ids_in(folder) == {earlier}, f"{label}: files left: {sorted(os.listdir(folder))}"
        assert not (folder / LOCK).exists(), f"{label}: lock left behind"
        assert sorted(os.listdir(folder)) == sorted(before), f"{label}: {sorted(os.listdir(folder))}"
        assert snapshot(folder, [earlier]) == before

    # Space freed: the next backup succeeds, and both images verify.
    (tmpfs / "filler").unlink()
    r = run_rescue("backup", str(src), str(folder), "--json", "--allow-ram")
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)["id"]
    for image_id in (earlier, new):
        r = run_rescue("verify", str(folder), "--image", image_id)
        assert r.returncode == 0, r.stderr
    assert snapshot(folder, [earlier]) == before
