"""The folder an NTFS partition's files are under, on either platform: the one place that choice is made.

The offline edits of a Windows (`core.repair`: boot repair, `rescue adapt`) read and write files in a
folder. Where that folder comes from is the machine's business:

- Linux: ntfs-3g mounts the partition (a loop device over its byte range) on a private folder for the
  ``with`` block, unmounted and waited for afterwards (ntfs-3g flushes its caches on the way out);
- Windows (a ``\\\\.\\PhysicalDriveN`` disk): Windows has mounted the partition itself; the folder is
  that volume's root, flushed after writing (`core.platform.windows.mounted`).

`require_ntfs_files` refuses, at a plan, what this machine cannot do: a disk image file on Windows (no
volume is mounted from it there) or a Linux without ntfs-3g.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .drivers import driver_mounted
from .loops import loop_device
from .tools import ErrorFor, require
from .windows.mounted import mounted_partition
from .windows.query import disk_number_of


def _windows_disk(disk: str) -> bool:
    return sys.platform == "win32" and disk_number_of(disk) is not None


def require_ntfs_files(disk: str, why: str) -> None:
    """Refuse (`UnsupportedError`) when the files of ``disk``'s NTFS partitions cannot be reached here."""
    if not _windows_disk(disk):
        require("ntfs-3g", why)


@contextlib.contextmanager
def ntfs_root(disk: str, offset: int, size: int, partition: int, *, readonly: bool, error: ErrorFor,
              refused: Callable[[str], Exception]) -> Iterator[Path]:
    """The folder holding the files of the NTFS volume at ``offset`` (``size`` bytes) of ``disk``.

    ``error(detail)`` is a tool's failure (reading or writing ``disk``); ``refused(detail)`` a volume that
    cannot be written as asked: ntfs-3g mounting it read-only only (Windows hibernated, or shut down
    with Fast Startup), since what is written there would be lost or would corrupt that session.
    """
    if _windows_disk(disk):
        with mounted_partition(disk, offset, size, partition, readonly=readonly) as root:
            yield Path(root)
        return
    require("ntfs-3g", "reading and writing files on NTFS")
    with loop_device(disk, offset=offset, size=size, readonly=readonly, error=error) as dev:
        mnt = Path(tempfile.mkdtemp(prefix="rescue-ntfs-"))
        try:
            opts = "no_detach," + ("ro" if readonly else "rw")
            with driver_mounted(["ntfs-3g", "-o", opts, dev, str(mnt)], str(mnt), error=refused):
                if not readonly and os.statvfs(mnt).f_flag & os.ST_RDONLY:
                    raise refused("ntfs-3g will only mount it read-only (Windows is hibernated or was shut "
                                  "down with Fast Startup); boot Windows and shut it down fully first")
                yield mnt
        finally:
            with contextlib.suppress(OSError):
                mnt.rmdir()
