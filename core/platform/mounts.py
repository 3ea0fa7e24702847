"""The mount table of our mount namespace (``/proc/self/mountinfo``), unmounting, the active swap areas."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from .tools import attempt

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem."""

    dev: int  # st_dev of the files on it
    mount_point: str
    fs_type: str  # "ext4", "fuseblk", "fuse.rescue", ...
    source: str  # the device or file mounted ("/dev/sda1", an image file), or a name ("tmpfs")
    options: str = ""  # the filesystem's own (super block) options, e.g. an overlay's "upperdir=..."


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def mounts(path: str = MOUNTINFO) -> list[Mount]:
    """Every mount, in mount order (later mounts over earlier ones); unreadable -> empty list.

    Windows has no such table (its volumes are in `core.platform.windows.volumes`): empty there, even
    when a Linux path happens to be readable (under Wine, through ``\\\\?\\unix``: the host's own)."""
    out: list[Mount] = []
    if sys.platform == "win32":
        return out
    try:
        # surrogateescape: a path that is not UTF-8 comes back as the bytes os functions expect.
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        # "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if not sep or len(fields) < 5 or len(rfields) < 2 or ":" not in fields[2]:
            continue
        major, _, minor = fields[2].partition(":")
        try:
            dev = os.makedev(int(major), int(minor))
        except ValueError:
            continue
        out.append(Mount(dev, _unescape(fields[4]), rfields[0], _unescape(rfields[1]),
                         _unescape(rfields[2]) if len(rfields) > 2 else ""))
    return out


def swaps(path: str = "/proc/swaps") -> list[str]:
    """Paths of the active swap areas (partitions or files); none on Windows (see `mounts`)."""
    if sys.platform == "win32":
        return []
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()[1:]  # the first line is the column header
    except OSError:
        return []
    return [_unescape(line.split()[0]) for line in lines if line.split()]


def is_mounted(path: str) -> bool:
    """Whether something is mounted at ``path`` (from the table: a dead FUSE mount cannot be stat'ed)."""
    path = path.rstrip("/") or "/"
    return any(m.mount_point == path for m in mounts())


def unmount(path: str, *, lazy: bool, tries: int = 6) -> str:
    """Unmount ``path``; "" when it is gone, else why not (the last ``umount`` message: busy).

    A file closed a moment ago can keep a FUSE mount busy briefly, so busy is retried before it counts.
    ``lazy``: a mount still busy then is detached from the tree anyway (it goes when its last user leaves).
    """
    last = ""
    for n in range(tries):
        if not is_mounted(path):
            return ""
        o = attempt(["umount", path])
        if o.ok:
            return ""
        last = o.detail
        time.sleep(0.1 * (n + 1))
    if lazy:
        attempt(["umount", "-l", path])
    return "" if not is_mounted(path) else last
