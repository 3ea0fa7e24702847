"""Durable file creation: write to ``*.partial``, fsync, rename, fsync the directory.

This ordering is what lets FORMAT.md promise that a crash never leaves a half-written file under a
final name (restic's local backend does the same).
"""

from __future__ import annotations

import errno
import os

from ..errors import DestinationFull, RepositoryError


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def os_error(e: OSError, folder: str, what: str) -> RepositoryError:
    """Map an OSError on the backup folder to our error, ENOSPC getting its own exit code."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DestinationFull(path=folder, detail=f"{what}: {e.strerror}")
    return RepositoryError(path=folder, detail=f"{what}: {e.strerror or e}")


def write_durable(folder: str, name: str, data: bytes) -> None:
    """Create ``folder/name`` with ``data`` durably and atomically (never half-visible)."""
    final = os.path.join(folder, name)
    partial = final + ".partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(partial, final)
        fsync_dir(folder)
    except OSError as e:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise os_error(e, folder, f"writing {name}") from e
