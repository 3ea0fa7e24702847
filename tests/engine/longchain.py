"""A long chain of small incrementals, for the tests of chains hundreds of images deep."""

from __future__ import annotations

from pathlib import Path

from core.engine.backup import BackupOptions, backup
from core.progress import Progress


def long_chain(tmp_path: Path, depth: int, text: bytes) -> tuple[Path, str, bytes]:
    """A 1 MiB source backed up in full, then ``depth - 1`` incrementals each changing 8 bytes:
    (backup folder, the last image's id, the source's last content)."""
    src, folder = tmp_path / "src.img", tmp_path / "bk"
    data = bytearray((text * (1 + (1 << 20) // len(text)))[:1 << 20])
    src.write_bytes(bytes(data))
    last = backup(str(src), str(folder), BackupOptions(), Progress()).image_id
    for i in range(1, depth):
        at = (i * 4096) % len(data)
        data[at:at + 8] = i.to_bytes(8, "little")
        src.write_bytes(bytes(data))
        last = backup(str(src), str(folder), BackupOptions(mode="incremental"), Progress()).image_id
    return folder, last, bytes(data)
