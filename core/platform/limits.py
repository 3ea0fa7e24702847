"""The process's limits that the engine's work depends on: open files.

A restore point keeps every image of its chain open while it is in use (each volume, and each
version-2 manifest, whose table blocks are read as they are needed), so a point 500 images deep needs
over 1000 descriptors: more than the usual soft limit of 1024, well within the usual hard limit. The
engine asks for what it needs before it opens a chain, so a long chain is never reported as damage
because the process ran out of descriptors.
"""

from __future__ import annotations

import os

from ..errors import RepositoryError

# Descriptors beside the chain's: the target, the source, scratch and log files, the interpreter's own.
HEADROOM = 64


def open_files_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return HEADROOM


def ensure_open_files(needed: int, folder: str, what: str) -> None:
    """Make room for ``needed`` more open files (raising the soft limit up to the hard one); a clean
    error naming ``what`` needs them when the hard limit is too low."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise here
        return
    want = open_files_in_use() + needed + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        # (merging the chain needs it open too: the limit must go up first)
        raise RepositoryError(path=folder, detail=f"{what} needs {want} open files and the system allows {hard}: "
                                                 f"raise the limit (ulimit -Hn {want}) and run again; a merge "
                                                 "(rescue merge) then shortens the chain")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else hard, hard))
