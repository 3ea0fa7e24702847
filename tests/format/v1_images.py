"""Images written by format version 1, kept as files so every later version proves it still reads them.

`make_disk(path, generation)` builds the same small MBR disk every time (one partition of an unknown
type, so every sector is imaged, with text-like, random and all-zero blocks); generation 1 changes a
few blocks of generation 0 and blanks one. The committed images under data/v1/ were made from these
disks by rescue 0.1.0 (format 1):

    python -m tests.format.v1_images DIR    # with a format-1 engine only

- ``plain``: a full backup of generation 0, then an incremental of generation 1 (unencrypted);
- ``enc``: a full backup of generation 1 with the password ``FIXTURE_PASSWORD`` (a light Argon2id
  cost, so that tests open it quickly).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

MiB = 1 << 20
DISK_SIZE = 3 * MiB
PART_START = 64 * 1024
FIXTURE_PASSWORD = b"fixture password"
DATA = Path(__file__).resolve().parent / "data" / "v1"


def make_disk(path: Path, generation: int) -> None:
    """The fixture disk: an MBR (signature 0x1f2e3d4c) and one type-0x83 partition from 64 KiB."""
    rng = random.Random(1234)
    disk = bytearray(DISK_SIZE)
    for block in range(PART_START // 4096, DISK_SIZE // 4096):
        kind = rng.random()
        if kind < 0.2:
            continue  # all-zero 4 KiB (64 KiB runs of them become zero extents)
        if kind < 0.97:
            disk[block * 4096:(block + 1) * 4096] = (f"block {block} of the fixture disk; " * 200).encode()[:4096]
        else:
            disk[block * 4096:(block + 1) * 4096] = rng.randbytes(4096)
    if generation >= 1:
        change = random.Random(99)
        for block in change.sample(range(PART_START // 4096, DISK_SIZE // 4096), 24):
            disk[block * 4096:(block + 1) * 4096] = (f"changed {change.random()}; " * 200).encode()[:4096]
        disk[2 * MiB:2 * MiB + 128 * 1024] = bytes(128 * 1024)  # blanked: must read as zeros again
    # The MBR last: sector 0 must not be overwritten by the blocks above.
    disk[0:512] = bytes(512)
    disk[440:444] = (0x1F2E3D4C).to_bytes(4, "little")
    first, count = PART_START // 512, (DISK_SIZE - PART_START) // 512
    entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + first.to_bytes(4, "little") + count.to_bytes(4, "little")
    disk[446:462] = entry
    disk[510:512] = b"\x55\xaa"
    assert len(disk) == DISK_SIZE
    path.write_bytes(bytes(disk))


def _create(out: Path) -> None:
    from core.crypto.kdf import KdfParams
    from core.engine.backup import BackupOptions, backup
    from core.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    disk = out / "disk.img"
    made: dict[str, list[str]] = {}
    light = KdfParams(memory_kib=19456, iterations=2, lanes=1)
    for name, steps in (("plain", [(0, "full", None), (1, "incremental", None)]),
                        ("enc", [(1, "full", FIXTURE_PASSWORD)])):
        folder = out / name
        for generation, mode, password in steps:
            make_disk(disk, generation)
            r = backup(str(disk), str(folder), BackupOptions(mode=mode, password=password, kdf=light), Progress())
            made.setdefault(name, []).append(r.image_id)
    disk.unlink()
    (out / "images.json").write_text(json.dumps(made, indent=1) + "\n")


if __name__ == "__main__":
    _create(Path(sys.argv[1]))
    subprocess.run(["ls", "-lR", sys.argv[1]], check=False)
