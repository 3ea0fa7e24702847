"""R-64: the backup folder's writer lock (``rescue.lock``, FORMAT.md "Write ordering" step 1).

Two concurrent backups: the second fails with the lock's exit code 8 and a line naming the folder,
touches nothing, and the first completes with only its own files. A lock left by a dead process of
this host, or left empty by a writer killed between creating and filling it, does not stop the next
backup; a lock held by another host, or by a live process, does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from core.engine.repo import LOCK_FILL_GRACE, host_identity
from tests.crash.crashlib import (LOCK, dense_disk, ids_in, image_files, list_json, one_error_line, snapshot,
                                  start_rescue, wait_until)
from tests.images import run_rescue


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dense_disk(tmp_path_factory.mktemp("lock") / "src.img")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 MiB source: the stale/foreign lock cases are about the lock, not the data."""
    p = tmp_path_factory.mktemp("lock-tiny") / "tiny.bin"
    p.write_bytes(b"tiny source for the lock tests " * 34000)
    return p


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_second_concurrent_backup_fails_on_the_lock(src: Path, tmp_path: Path) -> None:
    """# guards R-64"""
    folder = tmp_path / "bk"
    a = start_rescue("backup", str(src), str(folder), "--split", "8M", "--json")
    try:
        wait_until(lambda: (folder / LOCK).exists() and (folder / LOCK).stat().st_size > 0, 30, "A's lock", a)
        # Hold A inside its locked section while B runs: no timing luck involved.
        a.send_signal(signal.SIGSTOP)
        holder = json.loads((folder / LOCK).read_text())
        assert holder["pid"] == a.pid and holder["host"] == socket.gethostname()
        lock_before = (folder / LOCK).read_bytes()
        files_before = sorted(os.listdir(folder))
        b = run_rescue("backup", str(src), str(folder), "--split", "8M")
        assert b.returncode == 8, (b.returncode, b.stderr)
        line = one_error_line(b.stderr)
        assert f"Backup folder {folder} is in use by another process" in line and str(a.pid) in line, line
        assert (folder / LOCK).read_bytes() == lock_before, "B touched A's lock"
        assert sorted(os.listdir(folder)) == files_before, "B wrote into the folder"
        a.send_signal(signal.SIGCONT)
        out, err = a.communicate(timeout=120)
    finally:
        if a.poll() is None:
            a.send_signal(signal.SIGCONT)
            a.kill()
            a.wait()
    assert a.returncode == 0, err
    a_id = json.loads(out)["id"]
    assert ids_in(folder) == {a_id}, "files of a second image appeared"
    files = image_files(folder, a_id)
    volumes = len(files) - 1
    assert volumes >= 3 and files == [f"{a_id}.manifest"] + [f"{a_id}.v{n:04d}" for n in range(1, volumes + 1)]
    assert not (folder / LOCK).exists()
    r = run_rescue("verify", str(folder))
    assert r.returncode == 0, r.stderr


def write_lock(folder: Path, holder: dict[str, object] | None, age: float = 0.0) -> None:
    folder.mkdir(exist_ok=True)
    (folder / LOCK).write_text("" if holder is None else json.dumps(holder))
    t = time.time() - age
    os.utime(folder / LOCK, (t, t))


@pytest.mark.parametrize("case", ["dead pid, this host", "earlier boot of this machine",
                                  "empty (killed before filling it)", "garbage"])
def test_stale_lock_is_removed(case: str, tiny: Path, tmp_path: Path) -> None:
    """# guards R-64, R-10 (a crash before step 3 leaves at most a stale lock, removed by the next writer)"""
    folder = tmp_path / "bk"
    if case.startswith("dead"):
        write_lock(folder, {**host_identity(), "pid": dead_pid(), "time": time.time() - 60})
    elif case.startswith("earlier boot"):
        # a live pid, even this test's own: it belonged to a boot whose processes are all gone
        write_lock(folder, {**host_identity(), "boot_id": "0" * 32, "pid": os.getpid(), "time": time.time() - 60})
    elif case.startswith("empty"):
        write_lock(folder, None, age=LOCK_FILL_GRACE + 1)
    else:
        folder.mkdir()
        (folder / LOCK).write_bytes(b"\x00\x17not json")
        t = time.time() - LOCK_FILL_GRACE - 1
        os.utime(folder / LOCK, (t, t))
    r = run_rescue("backup", str(tiny), str(folder), "--json")
    assert r.returncode == 0, f"{case}: {r.stderr}"
    assert not (folder / LOCK).exists()
    assert [e["complete"] for e in list_json(folder).values()] == [True]


@pytest.mark.parametrize("case", ["other host", "other machine, same hostname", "no boot id (older version)",
                                  "live pid, this host"])
def test_live_or_foreign_lock_is_respected(case: str, tiny: Path, tmp_path: Path) -> None:
    """# guards R-64; issue 16: two technicians' rescue media share a hostname, and a pid says nothing
    about another machine, so such a lock is never broken as stale (`rescue unlock` clears it)"""
    folder = tmp_path / "bk"
    if case == "other host":
        holder = {"host": "another-machine", "pid": dead_pid(), "time": time.time() - 3600}
    elif case.startswith("other machine"):
        holder = {**host_identity(), "machine_id": "f" * 32, "boot_id": "e" * 32, "pid": dead_pid(),
                  "time": time.time() - 3600}
    elif case.startswith("no boot id"):
        holder = {"host": socket.gethostname(), "pid": dead_pid(), "time": time.time() - 3600}
    else:
        holder = {**host_identity(), "pid": os.getpid(), "time": time.time()}
    write_lock(folder, holder, age=3600)
    before = (folder / LOCK).read_bytes()
    r = run_rescue("backup", str(tiny), str(folder))
    assert r.returncode == 8, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert str(folder) in line and str(holder["host"]) in line and "rescue unlock" in line, line
    assert (folder / LOCK).read_bytes() == before
    assert os.listdir(folder) == [LOCK]
    assert snapshot(folder, []) == {}
    # The technician's way out, once sure that machine is gone: refused without --yes off a terminal.
    r = run_rescue("unlock", str(folder))
    assert r.returncode == 3 and "--yes" in one_error_line(r.stderr), (r.returncode, r.stderr)
    assert (folder / LOCK).read_bytes() == before
    r = run_rescue("unlock", str(folder), "--yes", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["holder"]["pid"] == holder["pid"], r.stderr
    assert not (folder / LOCK).exists()
    r = run_rescue("backup", str(tiny), str(folder), "--json")
    assert r.returncode == 0, r.stderr
