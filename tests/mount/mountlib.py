"""Helpers for the mount tests: backups of factory disks, hashing through a mount (noting EIO), the
state of the mount table and loop devices, and the sweep of stale mounts a failed test may leave."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from core import platform
from core.engine.backup import BackupOptions, BackupResult, backup
from core.engine.overlay import resolved
from core.engine.view import open_view
from core.progress import Progress
from rescue.mount import stack, system
from rescue.mount.layout import point_manifest
from tests.ntfs3g import attached, walk_tree

PW = b"mount test password"


def make_backup(disk: Path, folder: Path, password: bytes | None = None, split: int | None = None,
                mode: str | None = None) -> BackupResult:
    opts = BackupOptions(password=password, split=split)
    if mode is not None:
        opts.mode = mode  # type: ignore[attr-defined]
    return backup(str(disk), str(folder), opts, Progress())


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_tree(root: Path) -> tuple[dict[str, str], set[str]]:
    """{relpath: sha256 | "dir" | "link:target"} of regular files/dirs/links below ``root`` (named
    streams left out), and the set of files whose read failed with EIO."""
    out: dict[str, str] = {}
    eio: set[str] = set()
    for rel, full, kind in walk_tree(root):
        if kind is not None:
            out[rel] = kind
            continue
        try:
            out[rel] = sha256_file(full)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            eio.add(rel)
    return out, eio


def without_streams(hashes: dict[str, str]) -> dict[str, str]:
    """tests.ntfs3g.file_hashes adds "path:stream" entries for named streams; hash_tree does not."""
    return {k: v for k, v in hashes.items() if ":" not in k.rsplit("/", 1)[-1] or v == "dir"}


def our_mounts(under: str) -> list[platform.Mount]:
    return system.mounts_under(under)


def our_loops(under: str) -> list[str]:
    return platform.loops_backed_by(under)


def losetup_a() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False).stdout


def sweep(base: str) -> None:
    """Tear down every rescue mount below ``base`` (and the extract mounts in /run/rescue) that a
    crashed test left behind, stale or live."""
    for root in (base, "/run/rescue"):
        for m in platform.mounts():
            if m.fs_type == stack.FSTYPE and (m.mount_point.startswith(root.rstrip("/") + "/")):
                stack.teardown(m.mount_point, lazy=True)


def chunk_of_user_files(folder: Path, disk: Any, part: Any) -> tuple[int, set[str]]:
    """A chunk of the image that holds data of ordinary files only, and those files' paths (from
    ntfscluster on the source partition, the independent oracle)."""
    with open_view(str(folder), None, lambda: None) as view:
        ranges: dict[int, list[tuple[int, int]]] = {}
        for disk_off, length, ref, chunk, _ in resolved(view.chain.manifests):
            if ref == 0 and part.start <= disk_off < part.start + part.size:
                ranges.setdefault(chunk, []).append((disk_off - part.start, length))
    chunks = sorted(ranges)
    with attached(disk.path, part.start, part.size) as dev:
        # from the middle of the volume outwards: metadata ($MFT, $LogFile) sits near its start
        for chunk in sorted(chunks, key=lambda c: abs(c - chunks[len(chunks) // 2])):
            files: set[str] = set()
            ok = True
            for off, length in ranges[chunk]:
                out = subprocess.run(["ntfscluster", "-c", f"{off // 4096}-{(off + length - 1) // 4096}", dev],
                                     capture_output=True, text=True, check=False).stdout
                for line in out.splitlines():
                    m = re.match(r"Inode \d+ /(.*)/\$DATA$", line)
                    if m and not m.group(1).startswith("$"):
                        files.add(m.group(1))
                    elif line.startswith("Inode"):
                        ok = False  # metadata, a directory index or an attribute-list extent
            if ok and files:
                return chunk, files
    raise AssertionError("no chunk holds only ordinary files")


def damage_chunk(folder: Path, res: BackupResult, chunk: int) -> None:
    """Flip one bit in the middle of a chunk's record payload in its volume file."""
    with open_view(str(folder), None, lambda: None) as view:
        c = point_manifest(view).chunk(chunk)
    with open(folder / res.volumes[c["volume_number"]], "r+b") as f:
        pos = c["record_offset"] + 40 + c["stored_length"] // 2
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ 0x10]))
