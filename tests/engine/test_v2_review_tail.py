"""Review of format version 2: the disk's last unit, when the disk's size is not a multiple of 16 KiB.

Most real disks end inside a unit (a "1 TB" disk of 1 953 525 168 sectors ends 3 KiB into its last
unit). An incremental that stores that unit records holes for the rest of it, and a tombstone's hole
covers the whole unit: both reach past the disk's end. Such an incremental must verify, read and
restore like any other (a check that extents lie inside the disk must allow for them, or the chunker
must cut them at the disk's end).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.progress import Progress

SIZE = (4 << 20) + 4096  # ends 4 KiB into a unit


@pytest.mark.parametrize("change", ["changed", "blanked"])
def test_v2_review_last_partial_unit_changed(tmp_path: Path, change: str) -> None:
    src, folder = tmp_path / "src.img", tmp_path / "bk"
    data = bytearray((b"tail unit " * (SIZE // 10 + 1))[:SIZE])
    src.write_bytes(bytes(data))
    backup(str(src), str(folder), BackupOptions(), Progress())
    if change == "changed":
        data[-100:] = b"x" * 100  # the last unit is stored again: a hole past the end follows its data
    else:
        data[-(64 << 10):] = bytes(64 << 10)  # zero blocks: the last unit's tombstone and hole
    src.write_bytes(bytes(data))
    r = backup(str(src), str(folder), BackupOptions(mode="incremental"), Progress())
    verify(str(folder), r.image_id, lambda: None, Progress())
    with open_view(str(folder), r.image_id, lambda: None) as view:
        assert view.read(0, SIZE) == bytes(data)
    target = tmp_path / "target.img"
    target.write_bytes(b"\xa5" * SIZE)
    execute_restore(plan_restore(str(folder), r.image_id, str(target), lambda: None, Progress()), Progress())
    assert target.read_bytes() == bytes(data)
