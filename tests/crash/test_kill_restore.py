"""R-15 for the CLI: `kill -9` of `rescue restore ... --yes` midway through writing the target.

The target starts as a disk file with another, valid MBR partition table. The restore is frozen
(SIGSTOP) once it has written a given share of its bytes (/proc/PID/io), inspected, then killed:
the target must have no partition table (bytes 510-511 are not 55 AA and sfdisk finds none) at
every point, so no tool takes it for a good copy. Running the same restore again completes it, and
the result is byte-identical to the source (dense_disk has no free space that holds data, so a full
SHA-256 comparison is exact).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.crash.crashlib import dense_disk, sha256_file, start_rescue, wait_until, written_bytes
from tests.images import run_rescue

# Shares of the restore's data writes at which it is killed.
KILL_AT = [0.05, 0.35, 0.7]


def has_table(target: Path) -> bool:
    with open(target, "rb") as f:
        f.seek(510)
        sig = f.read(2)
    r = subprocess.run(["sfdisk", "-d", str(target)], capture_output=True, text=True)
    if sig == b"\x55\xaa":
        assert r.returncode == 0, r.stderr
        return True
    assert r.returncode != 0, f"sfdisk found a table without the 55AA signature: {r.stdout}"
    return False


def test_kill9_restore_midway_then_rerun(tmp_path: Path) -> None:
    """# guards R-15"""
    src = dense_disk(tmp_path / "src.img")
    folder = tmp_path / "bk"
    r = run_rescue("backup", str(src), str(folder), "--json")
    assert r.returncode == 0, r.stderr
    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(src.stat().st_size)
    # Another disk's valid table, so that "no table after the kill" proves the restore removed it.
    subprocess.run(["sfdisk", "-q", str(target)], input="label: dos\nstart=4096, size=40960, type=83\n",
                   text=True, check=True)
    assert has_table(target)
    r = run_rescue("restore", str(folder), str(target), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    # Zero extents are punched/zeroed by the kernel, not written through write(): count the data only.
    total = plan["data_bytes"]
    assert total > 32 << 20  # enough writing that the freeze lands well inside it

    src_digest = sha256_file(src)
    for share in KILL_AT:
        before = sha256_file(target)
        proc = start_rescue("restore", str(folder), str(target), "--yes")
        try:
            wait_until(lambda: written_bytes(proc.pid) >= share * total, 60,
                       f"the restore to write {share:.0%} of its bytes", proc, interval=0.0005)
            proc.send_signal(signal.SIGSTOP)
            done = written_bytes(proc.pid)
            assert done < total, f"restore had already written everything ({done} of {total} bytes)"
            assert not has_table(target), f"killed at {done} of {total} bytes: the target still has a table"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        print(f"R-15: killed after {done} of {total} bytes ({done / total:.0%})")
        assert not has_table(target)
        assert sha256_file(target) not in (before, src_digest)
        r = run_rescue("restore", str(folder), str(target), "--yes")
        assert r.returncode == 0, r.stderr
        assert has_table(target)
        assert sha256_file(target) == src_digest
