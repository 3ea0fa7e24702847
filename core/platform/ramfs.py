"""Whether a folder lives in RAM (tmpfs, ramfs, or the initramfs rootfs of the rescue media).

What is written there is gone at power-off: a backup "made" into such a folder is lost, so the CLI
refuses one unless asked. The kernel says which filesystem holds a path (statfs's f_type); Python's
os module does not expose it, so libc's statfs is called directly.
"""

from __future__ import annotations

import ctypes
import os

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
# The initramfs rootfs is one of these two (tmpfs when the kernel has it), so it needs no number of its own.
RAM_FILESYSTEMS = {TMPFS_MAGIC: "tmpfs", RAMFS_MAGIC: "ramfs"}
# struct statfs is 120 bytes on x86-64 (84 on i386); f_type, a C long, comes first on every Linux ABI.
_STATFS_BUFFER = 256

_libc = ctypes.CDLL(None, use_errno=True)


def ram_filesystem(path: str) -> str | None:
    """"tmpfs" or "ramfs" when ``path`` (or, while it does not exist yet, the nearest folder above it)
    is on a RAM filesystem; None when it is not, or when the kernel cannot tell."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and p != os.path.dirname(p):
        p = os.path.dirname(p)
    buf = ctypes.create_string_buffer(_STATFS_BUFFER)
    if _libc.statfs(os.fsencode(p), buf) != 0:
        return None
    f_type = ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    return RAM_FILESYSTEMS.get(f_type)
