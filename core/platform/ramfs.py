"""Whether a folder lives in RAM (tmpfs, ramfs, the initramfs rootfs of the rescue media, or an overlay
whose writable layer is one of those, as a live system's root often is).

What is written there is gone at power-off: a backup "made" into such a folder is lost, so the CLI
refuses one unless asked. The kernel says which filesystem holds a path (statfs's f_type); Python's
os module does not expose it, so libc's statfs is called directly.

On Windows a RAM disk drive says so (GetDriveTypeW), but WinPE's own X:, the RAM disk it runs from,
reports itself as a fixed disk: while WinPE runs (its ``MiniNT`` key exists) the Windows folder's drive
is that RAM disk.
"""

from __future__ import annotations

import ctypes
import os
import sys

from .mounts import mounts

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
OVERLAYFS_MAGIC = 0x794C7630  # what is written there goes to its upper layer: judged by that layer
# The initramfs rootfs is one of these two (tmpfs when the kernel has it), so it needs no number of its own.
RAM_FILESYSTEMS = {TMPFS_MAGIC: "tmpfs", RAMFS_MAGIC: "ramfs"}
# struct statfs is 120 bytes on x86-64 (84 on i386); f_type, a C long, comes first on every Linux ABI.
_STATFS_BUFFER = 256

# Linux's libc (statfs); Windows asks other questions (`_windows_ram`).
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform != "win32" else None
# Windows: GetDriveTypeW's answer for a RAM disk, and the key that exists only while WinPE runs.
_DRIVE_RAMDISK = 6
_WINPE_KEY = r"SYSTEM\CurrentControlSet\Control\MiniNT"


def ram_filesystem(path: str, _depth: int = 0) -> str | None:
    """"tmpfs" or "ramfs" when ``path`` (or, while it does not exist yet, the nearest folder above it)
    is on a RAM filesystem, "overlay on tmpfs" (or ramfs) for an overlay whose upper layer is; None when it
    is not, or when the kernel cannot tell. On Windows: a RAM disk drive, or WinPE's X:."""
    if sys.platform == "win32":
        return _windows_ram(path)
    if _libc is None:
        return None
    p = os.path.abspath(path)
    while not os.path.exists(p) and p != os.path.dirname(p):
        p = os.path.dirname(p)
    buf = ctypes.create_string_buffer(_STATFS_BUFFER)
    if _libc.statfs(os.fsencode(p), buf) != 0:
        return None
    f_type = ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    if f_type == OVERLAYFS_MAGIC and _depth < 4:  # overlays can stack; a few levels are plenty
        upper = _overlay_upper(os.path.realpath(p))
        below = ram_filesystem(upper, _depth + 1) if upper else None
        return f"overlay on {below}" if below else None
    return RAM_FILESYSTEMS.get(f_type)


def _overlay_upper(path: str) -> str | None:
    """The upper (writable) layer of the overlay mount that holds ``path``."""
    holding = [m for m in mounts() if m.fs_type == "overlay"
               and (path == m.mount_point or path.startswith(m.mount_point.rstrip("/") + "/"))]
    if not holding:
        return None
    best = max(holding, key=lambda m: len(m.mount_point))
    for opt in best.options.split(","):
        if opt.startswith("upperdir="):
            return opt[len("upperdir="):]
    return None


if sys.platform == "win32":  # (sys.platform itself, so that mypy checks this for the platform it checks)
    import winreg

    def _windows_ram(path: str) -> str | None:
        """A RAM disk drive, or WinPE's system drive (X:, the RAM disk WinPE runs from, which
        Windows reports as an ordinary fixed drive); None otherwise (network shares included)."""
        drive = os.path.splitdrive(os.path.abspath(path))[0]
        if not drive:
            return None
        if ctypes.windll.kernel32.GetDriveTypeW(drive + "\\") == _DRIVE_RAMDISK:
            return "RAM disk"
        windows = ctypes.create_unicode_buffer(260)
        # The Windows folder's drive, asked of the system rather than read from %SystemDrive%, which
        # any parent process may have changed.
        if not ctypes.windll.kernel32.GetWindowsDirectoryW(windows, len(windows)):
            return None
        if drive.upper() != os.path.splitdrive(windows.value)[0].upper():
            return None
        try:
            winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, _WINPE_KEY).Close()
        except OSError:
            return None  # an installed Windows: its system drive is a disk
        return f"the RAM disk {drive} WinPE runs from"
