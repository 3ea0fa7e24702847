"""R-18: the backup source disappears mid-backup (a USB disk pulled out).

The source is a real disk (tests.images.small_disk) served through tests/crash/eio_fuse.py, which,
after a few MiB of the data phase, fails every later read: with EIO (a disk the kernel still has) and
with ENODEV (a device already gone). The backup must stop with one line and exit 4 saying the source
stopped answering; it must not go on sector by sector recording the rest of the disk as "unreadable"
and commit that. Nothing of the new image may be left listed complete (its volumes are removed), the
earlier image stays byte-identical, the lock is gone, and a following backup works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.progress import Progress
from tests.crash.crashlib import LOCK, ids_in, one_error_line, snapshot
from tests.crash.fuseshim import mounted_shim
from tests.images import run_rescue, small_disk

SHIM = Path(__file__).with_name("eio_fuse.py")
PULL_AFTER = 8 << 20  # well inside the data phase of small_disk's backup (about 40 MiB read)


@pytest.mark.parametrize("errname", ["EIO", "ENODEV"])
def test_source_pulled_mid_backup(errname: str, tmp_path: Path) -> None:
    """# guards R-18"""
    src = small_disk(tmp_path / "src.img")
    folder = tmp_path / "bk"
    earlier = backup(str(src), str(folder), BackupOptions(), Progress()).image_id
    before = snapshot(folder, [earlier])
    with mounted_shim(SHIM, [str(src), "", f"{PULL_AFTER}:{errname}"], tmp_path / "mnt") as shim:
        r = run_rescue("backup", str(shim), str(folder), "--json")
        # The shim really is gone now.
        with pytest.raises(OSError):
            with open(shim, "rb", buffering=0) as f:
                f.read(512)
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    line = one_error_line(r.stderr.replace(r.stdout, ""))
    assert str(shim) in line and "stopped answering" in line, line
    assert json.loads(r.stdout)["exit_code"] == 4
    # Nothing committed, nothing left behind, the earlier image untouched.
    assert ids_in(folder) == {earlier}, sorted(p.name for p in folder.iterdir())
    assert not (folder / LOCK).exists()
    assert snapshot(folder, [earlier]) == before
    assert [e.id for e in Repository(str(folder)).list_images() if e.complete] == [earlier]
    # The folder is usable: the next backup (the disk plugged in again) works and verifies.
    r = run_rescue("backup", str(src), str(folder), "--json")
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)["id"]
    r = run_rescue("verify", str(folder), "--image", new)
    assert r.returncode == 0, r.stderr
