"""A deterministic "day of use" on a factory disk: what changes on a Windows C: between two backups.

Through ntfs-3g (read-write): small edits inside big files (a few KiB each), appends that grow files,
new files, deleted files, and one file rewritten whole. ``fraction`` is the share of files touched.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.factory import DiskInfo
from tests.ntfs3g import mounted_ntfs


def day_of_use(info: DiskInfo, path: Path, seed: int, fraction: float = 0.02) -> dict[str, int]:
    win = info.part("windows")
    rnd = random.Random(seed)
    stats = {"edited": 0, "grown": 0, "added": 0, "deleted": 0, "rewritten": 0}
    with mounted_ntfs(path, win.start, win.size, readonly=False, remove_hiberfile=True) as mnt:
        files = sorted(p for p in mnt.rglob("*") if p.is_file() and not p.is_symlink()
                       and p.name.lower() not in ("pagefile.sys", "hiberfil.sys"))
        touched = rnd.sample(files, max(4, int(len(files) * fraction)))
        for i, p in enumerate(touched):
            size = p.stat().st_size
            action = ("edit", "grow", "delete", "rewrite")[i % 4]
            if action == "edit" and size > 8192:
                with open(p, "r+b") as f:
                    for _ in range(3):  # three scattered 1-4 KiB edits
                        f.seek(rnd.randrange(0, size - 4096))
                        f.write(rnd.randbytes(rnd.randrange(1024, 4096)))
                stats["edited"] += 1
            elif action == "grow":
                with open(p, "ab") as f:
                    f.write(b"appended log line\n" * rnd.randrange(10, 2000))
                stats["grown"] += 1
            elif action == "delete":
                p.unlink()
                stats["deleted"] += 1
            else:
                p.write_bytes(rnd.randbytes(min(size, 256 << 10)))
                stats["rewritten"] += 1
        new = mnt / "Users" / f"new-{seed}"
        new.mkdir(parents=True, exist_ok=True)
        for i in range(10):
            (new / f"file{i}.txt").write_bytes((f"day {seed} file {i}\n" * rnd.randrange(10, 3000)).encode())
            stats["added"] += 1
        os.sync()
    return stats
