"""R-10: `kill -9` of a running `rescue backup` into a folder that already holds complete images.

A real source disk (tests.images.small_disk with its raw partition filled) is backed up by the CLI,
killed with SIGKILL after delays spread over the length of one uninterrupted backup (stratified,
seeded), and after every kill the folder is judged as the next `rescue` run sees it (FORMAT.md
"Write ordering"): earlier images byte-identical; the new image absent, listed incomplete, or
(killed after the commit) complete and sound; `restore` picking the latest *complete* image; a
stale lock never in the way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from core.crypto.kdf import KdfParams
from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.verify import verify
from core.progress import Progress
from tests.crash.crashlib import (LOCK, dense_disk, ids_in, image_files, list_json, snapshot, start_rescue,
                                  wait_until)
from tests.images import run_rescue

SEED = int(os.environ.get("CRASH_SEED", "20261125"))
KILLS = 15
PASSWORD = b"correct horse"
CHEAP_KDF = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)  # the floor: the KDF is not under test
LEVEL = "9"  # slow enough (~1-2 s) that the kills land in every phase of the backup


def test_kill9_backup_at_many_points(tmp_path: Path) -> None:
    """# guards R-10"""
    print(f"R-10 seed {SEED} (replay: CRASH_SEED={SEED})")
    rnd = random.Random(SEED)
    src = dense_disk(tmp_path / "src.img")
    folder = tmp_path / "bk"
    # The earlier images: one plain, one encrypted and split (made in-process: quicker, same engine).
    plain = backup(str(src), str(folder), BackupOptions(level=1), Progress()).image_id
    encrypted = backup(str(src), str(folder), BackupOptions(level=1, password=PASSWORD, kdf=CHEAP_KDF,
                                                            split=8 << 20), Progress()).image_id
    # One uninterrupted run at the kill level measures how long a backup takes here (machine load
    # varies); it is a third earlier image.
    t0 = time.monotonic()
    r = run_rescue("backup", str(src), str(folder), "--level", LEVEL, "--split", "8M", "--json")
    duration = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    complete = [plain, encrypted, json.loads(r.stdout)["id"]]
    before = snapshot(folder, complete)
    delays = [duration * (i + rnd.random()) / KILLS for i in range(KILLS)]
    rnd.shuffle(delays)  # a stale lock or leftovers of any phase may precede any other phase
    print(f"backup takes {duration:.2f} s; kill delays {[round(d, 3) for d in delays]}")

    incomplete: list[str] = []
    killed: set[int] = set()
    stale_locks = 0
    for i, delay in enumerate(delays):
        known = ids_in(folder)
        proc = start_rescue("backup", str(src), str(folder), "--level", LEVEL, "--split", "8M", "--json")
        killed.add(proc.pid)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        # It may finish between the sleep and the kill: then it must have succeeded, else it was killed.
        if proc.returncode != -signal.SIGKILL:
            # Too late to kill: it must then have succeeded (a stale lock must not have stopped it).
            assert proc.returncode == 0, f"kill {i} (delay {delay:.3f}): exit {proc.returncode}: {err}"
        new = ids_in(folder) - known
        assert len(new) <= 1, f"kill {i}: more than one new image {new}"
        assert snapshot(folder, complete) == {k: v for k, v in before.items()}, \
            f"kill {i} (delay {delay:.3f} s): an earlier image's files changed"
        # `rescue list --json` whenever the kill left something to judge; otherwise the same code in-process.
        if new:
            listing = list_json(folder)
        else:
            listing = {e.id: e.as_json() for e in Repository(str(folder)).list_images()}
        for image_id in complete:
            assert listing[image_id]["complete"] is True, f"kill {i}: earlier image {image_id} not complete"
        if new:
            [nid] = new
            names = image_files(folder, nid)
            if f"{nid}.manifest" in names:
                # Killed after the commit (step 4, maybe before the lock's removal): a complete image.
                assert listing[nid]["complete"] is True, f"kill {i}: committed {nid} listed {listing[nid]}"
                res = verify(str(folder), nid, lambda: None, Progress())
                assert res.chunks > 0
                complete.append(nid)
                before.update(snapshot(folder, [nid]))
            else:
                assert listing[nid]["complete"] is False, f"kill {i}: {nid} with files {names} listed complete"
                assert "did not finish" in str(listing[nid].get("error", "")), listing[nid]
                incomplete.append(nid)
                # Volumes without a manifest exist only between steps 1 and 5: the lock must still be there.
                assert (folder / LOCK).exists(), f"kill {i}: incomplete image {nid} but no lock left"
        # restore's default choice is the latest complete image, never the leftovers of a kill.
        assert Repository(str(folder)).resolve(None) == complete[-1]
        if (folder / LOCK).exists():
            holder = json.loads((folder / LOCK).read_text() or "null")
            # Left by this kill, or by an earlier one if this process was killed before it reached the lock.
            assert holder is None or holder["pid"] in killed, f"kill {i}: lock of a live process? {holder}"
            stale_locks += 1
        state = "none"
        if new:
            state = "complete" if complete[-1] in new else f"incomplete {image_files(folder, nid)}"
        print(f"kill {i}: delay {delay:.3f} s, new image: {state}, lock left: {(folder / LOCK).exists()}")

    # One more kill, placed for sure inside the data phase: the newest image is now an incomplete one
    # and a stale lock is in the folder, for the checks below.
    known = ids_in(folder)
    proc = start_rescue("backup", str(src), str(folder), "--level", LEVEL, "--split", "8M", "--json")
    killed.add(proc.pid)
    wait_until(lambda: bool(ids_in(folder) - known), 60, "a volume file of the new image", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    [nid] = ids_in(folder) - known
    incomplete.append(nid)
    assert json.loads((folder / LOCK).read_text())["pid"] == proc.pid
    assert list_json(folder)[nid]["complete"] is False
    assert snapshot(folder, complete) == before

    assert len(incomplete) > 1, "no time-based kill landed inside a backup: the test did not exercise anything"
    assert stale_locks, "no kill left a stale lock: the lock path was not exercised"

    # The CLI's default image for restore and verify is the latest complete one; incomplete ones are refused.
    target = tmp_path / "target.img"
    target.touch()
    os.truncate(target, src.stat().st_size)
    r = run_rescue("restore", str(folder), str(target), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["plan"]["image"] == complete[-1]
    r = run_rescue("verify", str(folder), "--image", incomplete[-1])
    assert r.returncode == 21, (r.returncode, r.stderr)
    assert incomplete[-1] in r.stderr and "incomplete" in r.stderr
    r = run_rescue("restore", str(folder), str(target), "--image", incomplete[-1], "--yes")
    assert r.returncode == 21, (r.returncode, r.stderr)
    with open(target, "rb") as f:
        assert f.read(1 << 20) == bytes(1 << 20), "a refused restore wrote to the target"

    # A rerun succeeds whatever the kills left behind (stale lock included) and all images verify.
    assert (folder / LOCK).exists()
    r = run_rescue("backup", str(src), str(folder), "--json")
    assert r.returncode == 0, f"rerun after the kills (stale lock present) failed: {r.stderr}"
    rerun = json.loads(r.stdout)["id"]
    assert not (folder / LOCK).exists()
    r = run_rescue("verify", str(folder), "--image", encrypted, env={"RESCUE_PASSWORD": PASSWORD.decode()})
    assert r.returncode == 0, r.stderr
    for image_id in complete + [rerun]:
        assert verify(str(folder), image_id, lambda: PASSWORD, Progress()).chunks > 0
    assert snapshot(folder, complete) == before
