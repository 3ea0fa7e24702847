"""Durable file creation: write to ``*.partial``, fsync, rename, fsync the directory.

This ordering is what lets FORMAT.md promise that a crash never leaves a half-written file under a
final name (restic's local backend does the same).
"""

from __future__ import annotations

import errno
import os
import shutil

from ..errors import DestinationFull, RepositoryError
from ..platform import files
from ..platform.files import fsync_dir

# EDQUOT is missing from some platforms' errno (Windows reports a full quota as ENOSPC).
_FULL = tuple(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))

__all__ = ["fsync_dir", "os_error", "pwrite_all", "write_durable", "write_fsync"]


# A folder with less free space than this when a write failed with a plain I/O error is taken to be
# full: more than one write of the engine (a chunk of at most 4 MiB and its record header), so a write
# refused for want of space always leaves less than this behind.
NEARLY_FULL = 16 << 20


def _free(folder: str) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def os_error(e: OSError, folder: str, what: str) -> RepositoryError:
    """Map an OSError on the backup folder to our error, ENOSPC getting its own exit code.

    Some network clients report a full server as EIO (sshfs: SFTP version 3 has no "no space" status,
    only a generic failure): an I/O error while the folder has (almost) no space left is the same
    DestinationFull, with what the folder reported."""
    if e.errno in _FULL:
        return DestinationFull(path=folder, detail=f"{what}: {e.strerror}")
    if e.errno == errno.EIO:
        free = _free(folder)
        if free is not None and free < NEARLY_FULL:
            return DestinationFull(path=folder, detail=f"{what}: {e.strerror} ({free // 1024} KiB free)")
    return RepositoryError(path=folder, detail=f"{what}: {e.strerror or e}")


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (a short pwrite is continued; OSError is the caller's)."""
    view = memoryview(data)
    while view:
        n = files.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def write_fsync(path: str | os.PathLike[str], data: bytes) -> None:
    """Create or truncate ``path``, write all of ``data`` and fsync it (OSError is the caller's)."""
    fd = files.open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | files.CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(folder: str, name: str, data: bytes) -> None:
    """Create ``folder/name`` with ``data`` durably and atomically (never half-visible).

    For new names only: if the folder's fsync fails after the rename, the file is removed again, so an
    error always means "not written" (an existing file of that name would be lost with it)."""
    final = os.path.join(folder, name)
    partial = final + ".partial"
    renamed = False
    try:
        write_fsync(partial, data)
        files.rename(partial, final)
        renamed = True
        fsync_dir(folder)
    except OSError as e:
        # Not durable means not written: a caller that sees this error must not find the file in place
        # (for a manifest, a commit the caller is busy undoing).
        try:
            os.unlink(final if renamed else partial)
        except OSError:
            pass
        raise os_error(e, folder, f"writing {name}") from e
