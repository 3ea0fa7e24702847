"""Whether a process is alive: the holder of a backup folder's lock, the server of a mount.

A zombie (exited, not yet reaped by its parent) is dead: its locks and its FUSE server are gone, so
treating it as alive would keep a stale lock or wait for a server that will never answer.
"""

from __future__ import annotations

import os
import sys

# Windows: OpenProcess's right to ask a process's exit code, and the code of one still running.
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259
_ERROR_ACCESS_DENIED = 5


def pid_alive(pid: object) -> bool:
    """True when ``pid`` (any value read from a file) names a running, non-zombie process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a pid beyond the kernel's range
        return False
    except PermissionError:
        pass  # it exists, under another user: still check for a zombie below
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "PID (COMM) STATE ...": COMM may hold spaces and ")", so split after the last ")".
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        # Gone between the two looks, or no /proc at all: then only kill()'s answer is known.
        return not os.path.isdir("/proc/self")


if sys.platform == "win32":  # (sys.platform itself, so that mypy checks this for the platform it checks)
    import ctypes
    from ctypes import wintypes

    def _windows_pid_alive(pid: int) -> bool:
        # Never os.kill here: on Windows it terminates the process whatever the signal number.
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = wintypes.HANDLE
        kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
        kernel32.GetExitCodeProcess.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
        kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
        if pid > 0xFFFFFFFF:
            return False
        handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            # Access denied: it exists (another user's, or protected); anything else: no such process.
            return bool(ctypes.get_last_error() == _ERROR_ACCESS_DENIED)
        try:
            code = wintypes.DWORD(0)
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True  # it exists; whether it still runs is unknown, so its lock is not taken
            # A process that exited with 259 itself looks alive: only an odd lock stays then, never a lost one.
            return bool(code.value == _STILL_ACTIVE)
        finally:
            kernel32.CloseHandle(handle)
