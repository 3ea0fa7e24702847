"""Review of format version 2: an incremental that crashed (its manifest's .partial exists from the
start) is incomplete for `rescue list`, never a parent, and goes with the next prune; a merge and the
next incremental ignore it.

The crash is real: the backup runs in a forked child that dies (``os._exit``) right after the event
named (tests/crash/faults.py): after the manifest's .partial was created (no volume yet), and after
its first volume was renamed (table blocks already in the .partial).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.merge import merge
from core.engine.prune import Policy, prune
from core.engine.repo import Repository
from core.engine.view import open_view
from core.progress import Progress
from tests.crash.faults import CRASH_EXIT, run_crashing
from tests.images import run_rescue

MiB = 1 << 20


def disk(path: Path, generation: int) -> bytes:
    rnd = random.Random(generation)
    data = bytearray((b"text of the disk " * (12 * MiB // 17 + 1))[:12 * MiB])
    for _ in range(40):
        off = rnd.randrange(0, 12 * MiB - 70_000)
        data[off:off + 70_000] = rnd.randbytes(70_000)
    path.write_bytes(bytes(data))
    return bytes(data)


# Events of an incremental (tests/crash/faults.py numbering): 0 the lock, 1 the manifest's .partial,
# then per volume create / close / fsync / rename / fsync_dir.
@pytest.mark.parametrize("at", [1, 5, 6])
def test_v2_review_crashed_incremental_is_left_out(tmp_path: Path, at: int) -> None:
    src, folder = tmp_path / "src.img", tmp_path / "bk"
    d0 = disk(src, 0)
    full = backup(str(src), str(folder), BackupOptions(split=8 * MiB), Progress()).image_id
    disk(src, 1)
    _, code = run_crashing(at, lambda: backup(str(src), str(folder),
                                              BackupOptions(mode="incremental", split=8 * MiB), Progress()))
    assert code == CRASH_EXIT
    repo = Repository(str(folder))
    [crashed] = [i for i in repo.list_images() if i.id != full]
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith(crashed.id))
    assert f"{crashed.id}.manifest.partial" in names, names
    assert not crashed.complete

    listed = run_rescue("list", str(folder))
    assert listed.returncode == 0, listed.stderr
    assert crashed.id in listed.stdout and full in listed.stdout, listed.stdout

    # The next incremental takes the full as its parent, and restores to its disk.
    d2 = disk(src, 2)
    inc = backup(str(src), str(folder), BackupOptions(mode="incremental"), Progress())
    assert inc.parent == full
    with open_view(str(folder), inc.image_id, lambda: None) as view:
        assert view.read(0, len(d2)) == d2

    # A merge of the incremental leaves the crashed image's files alone; a prune removes them.
    merged = merge(str(folder), inc.image_id, lambda: None, Progress())
    with open_view(str(folder), merged.image_id, lambda: None) as view:
        assert view.read(0, len(d2)) == d2
    assert any(p.name.startswith(crashed.id) for p in folder.iterdir())
    result = prune(str(folder), Policy(keep_last=1), dry_run=False)
    assert crashed.id in result.deleted
    assert not any(p.name.startswith(crashed.id) for p in folder.iterdir()), sorted(folder.iterdir())
    assert [i.id for i in Repository(str(folder)).list_images()] == [merged.image_id]
    assert d0 != d2
