"""Test helpers: reach the filesystems inside a disk image file with the real Linux tools.

This machine (and CI) has loop devices and FUSE but no partition nodes for loop devices, no kernel NTFS
and no kernel vfat driver. So a partition is attached as its own loop device
(``losetup -o OFFSET --sizelimit SIZE``), NTFS is mounted through ntfs-3g, and FAT is read with mtools
directly from the image file (``-i file@@offset``).

``partition_hashes`` is the tests' round-trip oracle: it hashes every file (and named stream, directory and
link) of every NTFS/FAT partition of an image, so "restored disk == source disk" is one dict comparison.

Everything here cleans up after itself (unmount, then detach) in ``finally`` blocks, also on error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from core import platform

SECTOR = 512
# Value stored in the hash dicts for a directory (files map to their sha256 hex digest).
DIR = "dir"


class ToolError(RuntimeError):
    """A system tool failed; the message names the command and its stderr."""


def run(cmd: list[str], *, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    """Run ``cmd``, return stdout (text); raise ToolError with stderr on a non-zero exit."""
    return platform.run(cmd, " ".join(cmd), error=ToolError, env=env, input=input)


def attached(path: str | os.PathLike[str], offset: int, size: int,
             readonly: bool = True) -> contextlib.AbstractContextManager[str]:
    """Attach ``size`` bytes at ``offset`` of an image file as a loop device; yield its path."""
    return platform.loop_device(os.fspath(path), offset=offset, size=size, readonly=readonly, error=ToolError)


@contextlib.contextmanager
def mounted_ntfs(
    path: str | os.PathLike[str], partition_offset: int, size: int, readonly: bool = True,
    remove_hiberfile: bool = False,
) -> Iterator[Path]:
    """Mount the NTFS volume at ``partition_offset`` of an image through ntfs-3g; yield the mountpoint.

    ntfs-3g runs in the foreground as our child (`core.platform.driver_mounted`), so once the block
    ends it has flushed everything to the loop device and let go of it.

    A read-write mount of a hibernated volume (hiberfil.sys starting with "hibr", as the factory's
    disks have by default) is refused with ToolError, because ntfs-3g would silently fall back to
    read-only; ``remove_hiberfile=True`` lets ntfs-3g delete hiberfil.sys and mount read-write.
    """
    with attached(path, partition_offset, size, readonly=readonly) as dev:
        mnt = Path(tempfile.mkdtemp(prefix="ntfs3g-"))
        opts = "no_detach," + ("ro" if readonly else "remove_hiberfile" if remove_hiberfile else "rw")
        try:
            with platform.driver_mounted(["ntfs-3g", "-o", opts, dev, str(mnt)], str(mnt), error=ToolError):
                if not readonly and os.statvfs(mnt).f_flag & os.ST_RDONLY:
                    raise ToolError(f"ntfs-3g mounted {path}@{partition_offset} read-only: the volume is "
                                    "hibernated or unclean (pass remove_hiberfile=True to drop hiberfil.sys)")
                yield mnt
        finally:
            with contextlib.suppress(OSError):
                mnt.rmdir()


def _sha256_file(p: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with Path(p).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def walk_tree(mountpoint: str | os.PathLike[str]) -> Iterator[tuple[str, Path, str | None]]:
    """Every entry below a mounted tree as ``(relpath, path, kind)``: kind is ``"dir"``, ``"link:<target>"``
    (a target under the mountpoint rewritten as ``"/<path inside the volume>"``, so two mounts compare
    equal), or None for a regular file."""
    root = Path(mountpoint)
    prefix = str(root).rstrip("/")
    # os.walk does not follow symlinks, so junction loops (ProgramData/Application Data) are harmless
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                target = str(full.readlink())
                if target == prefix or target.startswith(prefix + "/"):
                    target = target[len(prefix):] or "/"
                yield rel, full, f"link:{target}"
            else:
                yield rel, full, DIR if full.is_dir() else None


def file_hashes(mountpoint: str | os.PathLike[str]) -> dict[str, str]:
    """Hash a mounted tree: ``{relpath: value}``, relpath with "/" separators.

    value: sha256 hex for a regular file, ``"dir"`` for a directory, ``"link:<target>"`` for a symlink
    (ntfs-3g shows junctions and NTFS symlinks as symlinks with absolute targets under the mountpoint;
    those are rewritten as ``"/<path inside the volume>"`` so two mounts compare equal). NTFS named
    streams (ntfs-3g's ``user.*`` xattrs) appear as ``"relpath:streamname"``.
    """
    out: dict[str, str] = {}
    for rel, full, kind in walk_tree(mountpoint):
        out[rel] = kind or _sha256_file(full)
        if kind is None or kind == DIR:
            for attr in _streams(full):
                out[f"{rel}:{attr}"] = hashlib.sha256(os.getxattr(full, "user." + attr)).hexdigest()
    return dict(sorted(out.items()))


def _streams(full: Path) -> list[str]:
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError:  # FS without xattrs
        return []
    return sorted(n[len("user."):] for n in names if n.startswith("user."))


MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}


def fat_file_hashes(path: str | os.PathLike[str], offset: int) -> dict[str, str]:
    """Hash every file and directory of the FAT filesystem at byte ``offset`` of an image (mtools)."""
    img = f"{os.fspath(path)}@@{offset}"
    listing = run(["mdir", "-/", "-b", "-i", img, "::/"], env=MTOOLS_ENV)
    names = [ln.strip() for ln in listing.splitlines() if ln.strip().startswith("::/")]
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fat-") as tmp:
        # One mcopy for the whole tree is much faster than one process per file.
        if names:
            run(["mcopy", "-s", "-n", "-p", "-i", img, "::/*", tmp], env=MTOOLS_ENV)
        for n in names:
            rel = n[len("::/"):].rstrip("/")
            local = Path(tmp) / rel
            if n.endswith("/"):
                out[rel] = DIR
            elif local.is_file():
                out[rel] = _sha256_file(local)
            else:
                raise ToolError(f"mcopy did not extract {n} from {img}")
    return dict(sorted(out.items()))


def fs_kind(path: str | os.PathLike[str], offset: int) -> str | None:
    """"ntfs", "fat" or None for the filesystem whose boot sector is at byte ``offset``."""
    with Path(path).open("rb") as f:
        f.seek(offset)
        boot = f.read(SECTOR)
    if len(boot) < SECTOR or boot[510:512] != b"\x55\xaa":
        return None
    if boot[3:11] == b"NTFS    ":
        return "ntfs"
    if boot[0x52:0x5A] == b"FAT32   " or boot[0x36:0x3B] in (b"FAT12", b"FAT16"):
        return "fat"
    return None


def partitions(disk_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``sfdisk --json`` partitions plus ``number`` (from the node name) and byte ``offset``/``length``."""
    table = json.loads(run(["sfdisk", "--json", os.fspath(disk_path)]))["partitiontable"]
    ss = int(table.get("sectorsize", SECTOR))
    out = []
    for p in table.get("partitions", []):
        node = str(p["node"])
        number = int(node[len(node.rstrip("0123456789")):])
        out.append({**p, "number": number, "offset": int(p["start"]) * ss, "length": int(p["size"]) * ss})
    return out


def partition_hashes(disk_path: str | os.PathLike[str]) -> dict[int, dict[str, str]]:
    """``{partition number: file_hashes}`` for every NTFS and FAT partition of a disk image."""
    out: dict[int, dict[str, str]] = {}
    for p in partitions(disk_path):
        off, length, num = p["offset"], p["length"], p["number"]
        kind = fs_kind(disk_path, off)
        if kind == "ntfs":
            with mounted_ntfs(disk_path, off, length, readonly=True) as mnt:
                out[num] = file_hashes(mnt)
        elif kind == "fat":
            out[num] = fat_file_hashes(disk_path, off)
    return out


def ntfsfix_clean(path: str | os.PathLike[str], offset: int, size: int) -> bool:
    """True when ``ntfsfix -n`` and ``ntfsresize --info`` both accept the NTFS volume at ``offset``."""
    with attached(path, offset, size, readonly=True) as dev:
        fix = platform.attempt(["ntfsfix", "-n", dev])
        # --info refuses a volume marked dirty or with inconsistent $Bitmap/$MFT accounting.
        info = platform.attempt(["ntfsresize", "--info", "--no-progress-bar", dev])
    return fix.ok and info.ok
