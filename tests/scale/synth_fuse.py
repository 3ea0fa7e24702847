"""Serve a synthetic disk (tests/scale/synthdisk.py) read-only through FUSE as ``MOUNTPOINT/disk.img``.

``python3 synth_fuse.py LAYOUT.json MOUNTPOINT GENERATION STATS.json`` mounts, prints ``ready`` and serves
until ``fusermount3 -u MOUNTPOINT``; then writes to STATS.json how many bytes it served (the source's
side of "bytes read", whatever the reader's own counters say). The file opens ``direct_io`` and
read-only (tests/crash/onefile_fuse.py), so every read reaches `Content.read` and no write can.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))  # run as a script by tests/crash/fuseshim.py

from tests.crash.onefile_fuse import OneFile, serve  # noqa: E402
from tests.scale.synthdisk import Content, Layout  # noqa: E402


class SynthFile(OneFile):
    def __init__(self, content: Content) -> None:
        super().__init__(content.layout.size, 0o444, 4096)
        self.content = content
        self.served = 0
        self.requests = 0

    async def read(self, fh: int, off: int, size: int) -> bytes:
        data = self.content.read(off, size)
        self.served += len(data)
        self.requests += 1
        return data


def main() -> None:
    layout_path, mountpoint, generation, stats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ops = SynthFile(Content(Layout.load(Path(layout_path)), generation))
    try:
        serve(ops, mountpoint, {"fsname=synth_fuse", "ro"})
    finally:
        Path(stats).write_text(json.dumps({"served_bytes": ops.served, "requests": ops.requests,
                                           "generation": generation}))


if __name__ == "__main__":
    main()
