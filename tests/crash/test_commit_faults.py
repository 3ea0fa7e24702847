"""R-11: every step of a backup's commit path made to fail, one at a time (FORMAT.md "Write ordering").

The events (tests/crash/faults.py) of an undisturbed backup are first checked against the order
FORMAT.md promises. Then, for each event k:

- *raise*: the call fails with EIO; the backup must end with a one-line `RepositoryError` naming the
  folder, remove every file of its image and its lock, and leave the earlier images byte-identical;
- *crash*: the process dies right there (forked child, ``os._exit``); the folder must be in the
  state FORMAT.md lists for a crash between that step and the next: before the manifest's rename an
  incomplete image (never chosen, never valid, ``.partial`` files included) and a stale lock; after it
  a complete, verifiable image and a stale lock; and the next backup must succeed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from core.crypto.kdf import KdfParams
from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.verify import verify
from core.errors import Error, RepositoryError
from core.progress import Progress
from tests.crash.crashlib import LOCK, ids_in, image_files, snapshot
from tests.crash.faults import CRASH_EXIT, install_raising, run_crashing

PASSWORD = b"pw for R-11"
CHEAP_KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)  # the floor: the KDF is not under test
SPLIT = 8 << 20
MiB = 1 << 20

# What FORMAT.md "Write ordering" prescribes for a 3-volume image: lock; the manifest created as
# .partial (its table area fills while the volumes are written); each volume created as .partial,
# closed (trailer), fsynced, renamed, folder fsynced; then the manifest finished, fsynced, renamed,
# folder fsynced (the commit); then the lock removed.
EXPECTED = (["create rescue.lock", "create ID.manifest.partial"]
            + [e for v in ("v0001", "v0002", "v0003")
               for e in (f"create ID.{v}.partial", f"close {v}", f"fsync ID.{v}.partial",
                         f"rename ID.{v}.partial", "fsync_dir")]
            + ["fsync ID.manifest.partial", "rename ID.manifest.partial", "fsync_dir", "unlock"])
COMMIT = EXPECTED.index("rename ID.manifest.partial")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A 16 MiB source (random, text, random, random: 3 volumes at --split 8M) and a folder holding
    a plain and an encrypted image of it."""
    base = tmp_path_factory.mktemp("r11")
    rnd = random.Random(11)
    src = base / "src.bin"
    src.write_bytes(rnd.randbytes(4 * MiB) + (b"some text " * (4 * MiB // 10 + 1))[:4 * MiB]
                    + rnd.randbytes(8 * MiB))
    folder = base / "bk"
    encrypted = BackupOptions(level=1, password=PASSWORD, kdf=CHEAP_KDF)
    ids = [backup(str(src), str(folder), BackupOptions(level=1), Progress()).image_id,
           backup(str(src), str(folder), encrypted, Progress()).image_id]
    return src, folder, ids


def fresh(template: tuple[Path, Path, list[str]], where: Path) -> tuple[Path, Path, list[str], dict[str, str]]:
    src, folder, ids = template
    copy = where / "bk"
    shutil.copytree(folder, copy)
    return src, copy, ids, snapshot(copy, ids)


def run_backup(src: Path, folder: Path) -> str:
    return backup(str(src), str(folder), BackupOptions(level=1, split=SPLIT), Progress()).image_id


def test_undisturbed_backup_follows_the_write_ordering(template: tuple[Path, Path, list[str]],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """# guards R-11 (the event list the fault loop walks is FORMAT.md's order)"""
    src, folder, ids, before = fresh(template, tmp_path)
    fp = install_raising(monkeypatch, None)
    new = run_backup(src, folder)
    assert fp.events == EXPECTED
    assert image_files(folder, new) == [f"{new}.manifest", f"{new}.v0001", f"{new}.v0002", f"{new}.v0003"]


@pytest.mark.parametrize("k", range(len(EXPECTED) - 1), ids=lambda k: f"{k}-{EXPECTED[k].replace(' ', '_')}")
def test_raise_at_each_commit_step(k: int, template: tuple[Path, Path, list[str]], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """# guards R-11 (clean failure: one error naming the folder, this image's files removed)"""
    src, folder, ids, before = fresh(template, tmp_path)
    with monkeypatch.context() as m:
        fp = install_raising(m, k)  # type: ignore[arg-type]
        with pytest.raises(Error) as info:
            run_backup(src, folder)
    # The failed step was the last one taken, apart from removing the lock (if it was created).
    assert fp.events == EXPECTED[:k + 1] + ([] if k == 0 else ["unlock"])
    e = info.value
    assert isinstance(e, RepositoryError) and e.exit_code == 7, repr(e)
    assert str(folder) in e.message and "\n" not in e.message
    assert f"injected fault at event {k} " in e.message  # the system's own error text is passed on
    assert ids_in(folder) == set(ids), f"step {k} ({EXPECTED[k]}): files of the failed image were left: " \
                                       f"{sorted(os.listdir(folder))}"
    assert not (folder / LOCK).exists()
    assert snapshot(folder, ids) == before
    assert Repository(str(folder)).resolve(None) == ids[-1]


@pytest.mark.parametrize("k", range(len(EXPECTED)), ids=lambda k: f"{k}-{EXPECTED[k].replace(' ', '_')}")
def test_crash_at_each_commit_step(k: int, template: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    """# guards R-11 (state after a crash between step k and k+1, per FORMAT.md's list)"""
    src, folder, ids, before = fresh(template, tmp_path)
    pid, code = run_crashing(k, lambda: run_backup(src, folder))
    assert code == CRASH_EXIT, f"step {k} ({EXPECTED[k]}): child exited {code} instead of crashing there"
    assert snapshot(folder, ids) == before, f"crash at step {k}: an earlier image changed"
    new = ids_in(folder) - set(ids)
    # Every crash happens after the lock was created and before it was removed: it is left, stale,
    # empty if the crash came right after its creation, else naming the dead process.
    lock = (folder / LOCK).read_text()
    assert (json.loads(lock)["pid"] == pid) if k > 0 else lock == "", lock
    repo = Repository(str(folder))
    listing = {e.id: e for e in repo.list_images()}
    if k == 0:
        assert not new, "a crash before step 3 leaves at most a stale lock"
    elif k <= COMMIT:
        [nid] = new
        names = image_files(folder, nid)
        assert f"{nid}.manifest" not in names
        assert listing[nid].complete is False and "did not finish" in listing[nid].error
        assert repo.resolve(None) == ids[-1], "restore's default must skip an image without manifest"
        with pytest.raises(Error) as info:
            verify(str(folder), nid, lambda: None, Progress())
        assert info.value.exit_code == 21
    else:
        [nid] = new
        assert listing[nid].complete is True
        assert repo.resolve(None) == nid
        assert verify(str(folder), nid, lambda: None, Progress()).chunks == 4
    # The next backup removes the stale lock (its process is gone) and succeeds.
    again = run_backup(src, folder)
    assert not (folder / LOCK).exists()
    assert verify(str(folder), again, lambda: None, Progress()).chunks == 4
    assert snapshot(folder, ids) == before


def test_same_second_backups_latest_is_the_last_made(template: tuple[Path, Path, list[str]], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """# guards R-10 (restore by default takes the latest complete image, never an earlier one)

    Ids are second-resolution time plus random bits, so two backups within one second must not be
    ordered by id alone."""
    src, _, _ = template
    folder = tmp_path / "bk"
    made = iter(["20260101-000000-ffffff", "20260101-000000-000000"])  # same second, random parts in this order
    monkeypatch.setattr("core.engine.backup.new_image_id", lambda: next(made))
    first = run_backup(src, folder)
    second = run_backup(src, folder)
    assert Repository(str(folder)).resolve(None) == second, f"picked {first}, made before {second}"
