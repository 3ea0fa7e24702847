"""What a mount of an image shows: one entry per included partition, and the whole disk.

Built from the partition table recorded in the manifest (``meta.table``), never from the image's
bytes, so opening stays instant. An image without a table (a disk with no partitions) shows only the
whole disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import IntegrityError
from core.format.image_meta import ImageMeta

# Filesystem names the backup records (core.fs.probe) -> how we browse them.
NTFS_NAMES = {"ntfs"}
FAT_NAMES = {"fat12", "fat16", "fat32", "vfat", "fat"}


@dataclass(frozen=True)
class Entry:
    """One raw file of the mount: bytes [start, start+size) of the disk."""

    name: str  # "p2" or "disk"
    number: int  # partition number; 0 for the whole disk
    start: int
    size: int
    fs: str | None  # as recorded ("ntfs", "fat32", "raw", None ...)
    role: str | None
    label: str

    @property
    def kind(self) -> str:
        """"ntfs", "fat" or "raw": which driver, if any, can browse it."""
        fs = (self.fs or "").lower()
        if fs in NTFS_NAMES:
            return "ntfs"
        if fs in FAT_NAMES:
            return "fat"
        return "raw"


def point_manifest(view: Any) -> Any:
    """The manifest of the restore point a `DiskView` shows (a chain's point, or a single image's)."""
    chain = getattr(view, "chain", None)
    return chain.point if chain is not None else view.reader.manifest


def entries(meta: ImageMeta, disk_size: int) -> list[Entry]:
    """The partitions an image holds (only those included in it), then the whole disk."""
    out: list[Entry] = []
    if meta.table:
        # Not the others: their bytes would read as zeros, which is not the partition.
        for p in meta.table.included:
            number, start, size = p.number, p.start, p.size
            # The manifest was validated on load, but a partition past the disk's end would make reads
            # silently short: refuse it here, naming it.
            if number <= 0 or start < 0 or size <= 0 or start + size > disk_size:
                raise IntegrityError(detail=f"partition {number} ({start}+{size}) lies outside the "
                                            f"{disk_size}-byte disk")
            out.append(Entry(f"p{number}", number, start, size, p.fs, p.role, p.label))
    out.append(Entry("disk", 0, 0, disk_size, None, None, ""))
    return out


def find_partition(items: list[Entry], number: int | None) -> Entry:
    """--partition N, or by default the Windows partition (then the only browsable one)."""
    parts = [e for e in items if e.number > 0]
    if number is not None:
        for e in parts:
            if e.number == number:
                return e
        raise LookupError(f"the image holds no partition {number} (it has: "
                          f"{', '.join(str(e.number) for e in parts) or 'none'})")
    for e in parts:
        if e.role == "windows":
            return e
    browsable = [e for e in parts if e.kind != "raw"]
    if len(browsable) == 1:
        return browsable[0]
    have = ", ".join(f"{e.number} ({e.fs or 'unknown'})" for e in parts) or "none"
    raise LookupError(f"the image has no Windows partition; choose one with --partition N (it has: {have})")
