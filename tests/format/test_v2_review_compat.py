"""Review of format version 2: images the first format-2 writer made stay readable.

Until 7f58f48 the chunker recorded the holes of the disk's last unit up to the unit's end, past the
disk's end when the disk's size is not a multiple of 16 KiB (most real disks). The reader refuses
data past the disk's end but accepts a hole up to the end of the disk's last unit (FORMAT.md
"Extent map entry"), so such an incremental still verifies and restores. Here the same image is made
by writing an incremental with today's engine and extending its last hole to the unit's end, as the
earlier writer wrote it.
"""

from __future__ import annotations

from pathlib import Path


from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.format.c_image import HASH_UNIT, HOLE_REF
from core.progress import Progress
from tests.format.test_v2_review_hostile import forge, rows_of

SIZE = (4 << 20) + 4096  # ends 4 KiB into a unit


def test_v2_review_first_writers_tail_hole_is_read(tmp_path: Path) -> None:
    src, folder = tmp_path / "src.img", tmp_path / "bk"
    data = bytearray((b"tail unit " * (SIZE // 10 + 1))[:SIZE])
    src.write_bytes(bytes(data))
    backup(str(src), str(folder), BackupOptions(), Progress())
    data[-100:] = b"x" * 100
    src.write_bytes(bytes(data))
    inc = backup(str(src), str(folder), BackupOptions(mode="incremental"), Progress()).image_id
    m = Repository(str(folder)).load(inc, lambda: None)
    ext, units = rows_of(m)
    m.close()
    # The last unit is stored again: its data, then (as the first writer had it) a hole to its end.
    unit_end = -(-SIZE // HASH_UNIT) * HASH_UNIT
    last = ext[-1]
    if last[4] == HOLE_REF:
        ext[-1] = (last[0], unit_end - last[0], 0, 0, HOLE_REF, 0)
    else:
        end = last[0] + last[1]
        assert end == SIZE, (end, SIZE)
        ext.append((end, unit_end - end, 0, 0, HOLE_REF, 0))
    forge(folder, inc, [("e", ext), ("u", units)])
    verify(str(folder), inc, lambda: None, Progress())
    with open_view(str(folder), inc, lambda: None) as view:
        assert view.read(0, SIZE) == bytes(data)
    target = tmp_path / "target.img"
    target.write_bytes(b"\xa5" * SIZE)
    execute_restore(plan_restore(str(folder), inc, str(target), lambda: None, Progress()), Progress())
    assert target.read_bytes() == bytes(data)
