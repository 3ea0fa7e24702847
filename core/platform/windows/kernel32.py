"""The real `core.platform.windows.seam.Win32`: kernel32 through ctypes (and the registry through winreg).

Only defined on Windows; everything else of the backend reaches these calls through `seam.current()`.
Each function is declared with its argtypes and restype, so a handle or a 64-bit offset is never
truncated to a C int; ``use_last_error`` keeps GetLastError's value per thread for `Win32Error`.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":
    import ctypes
    import winreg
    from ctypes import wintypes
    from typing import Any

    from .seam import Win32Error

    _INVALID_HANDLE = ctypes.c_void_p(-1).value
    _OPEN_EXISTING = 3
    _MEM_COMMIT_RESERVE = 0x1000 | 0x2000
    _MEM_RELEASE = 0x8000
    _PAGE_READWRITE = 0x04
    _ERROR_NO_MORE_FILES = 18
    _ERROR_MORE_DATA = 234
    _PATH_ROOM = 32768  # the longest path Windows names (\\?\ form), in WCHARs

    class _Overlapped(ctypes.Structure):
        # OVERLAPPED with its offset union as the two DWORDs; the handles are synchronous, so the
        # call returns when the transfer is done and only the offset matters.
        _fields_ = [("Internal", ctypes.c_size_t), ("InternalHigh", ctypes.c_size_t),
                    ("Offset", wintypes.DWORD), ("OffsetHigh", wintypes.DWORD), ("hEvent", wintypes.HANDLE)]

    def _declare(dll: Any) -> Any:
        H, D, B, P = wintypes.HANDLE, wintypes.DWORD, wintypes.BOOL, ctypes.c_void_p
        LPD = ctypes.POINTER(wintypes.DWORD)
        table = {
            "CreateFileW": ([wintypes.LPCWSTR, D, D, P, D, D, H], H),
            "CloseHandle": ([H], B),
            "DeviceIoControl": ([H, D, P, D, P, D, LPD, P], B),
            "ReadFile": ([H, P, D, LPD, ctypes.POINTER(_Overlapped)], B),
            "WriteFile": ([H, P, D, LPD, ctypes.POINTER(_Overlapped)], B),
            "FlushFileBuffers": ([H], B),
            "VirtualAlloc": ([P, ctypes.c_size_t, D, D], P),
            "VirtualFree": ([P, ctypes.c_size_t, D], B),
            "FindFirstVolumeW": ([wintypes.LPWSTR, D], H),
            "FindNextVolumeW": ([H, wintypes.LPWSTR, D], B),
            "FindVolumeClose": ([H], B),
            "GetVolumePathNamesForVolumeNameW": ([wintypes.LPCWSTR, wintypes.LPWSTR, D, LPD], B),
            "GetVolumePathNameW": ([wintypes.LPCWSTR, wintypes.LPWSTR, D], B),
            "GetVolumeNameForVolumeMountPointW": ([wintypes.LPCWSTR, wintypes.LPWSTR, D], B),
            "GetSystemDirectoryW": ([wintypes.LPWSTR, wintypes.UINT], wintypes.UINT),
        }
        for name, (args, res) in table.items():
            fn = getattr(dll, name)
            fn.argtypes, fn.restype = args, res
        return dll

    def _fail(call: str) -> Win32Error:
        return Win32Error(ctypes.get_last_error(), call)

    class Kernel32:
        """`Win32` over kernel32.dll."""

        def __init__(self) -> None:
            self.k = _declare(ctypes.WinDLL("kernel32", use_last_error=True))

        def create_file(self, path: str, access: int, share: int, flags: int) -> int:
            h = self.k.CreateFileW(path, access, share, None, _OPEN_EXISTING, flags, None)
            if h is None or h == _INVALID_HANDLE:
                raise _fail(f"CreateFileW({path})")
            return int(h)

        def close_handle(self, handle: int) -> None:
            self.k.CloseHandle(handle)

        def device_io_control(self, handle: int, code: int, inbuf: bytes, out_size: int) -> bytes:
            inb = ctypes.create_string_buffer(inbuf, len(inbuf)) if inbuf else None
            out = ctypes.create_string_buffer(out_size) if out_size else None
            got = wintypes.DWORD(0)
            if not self.k.DeviceIoControl(handle, code, inb, len(inbuf), out, out_size, ctypes.byref(got), None):
                raise _fail(f"DeviceIoControl({code:#x})")
            return out.raw[:got.value] if out is not None else b""

        def _transfer(self, fn: Any, call: str, handle: int, address: int, length: int, offset: int) -> int:
            done = wintypes.DWORD(0)
            ov = _Overlapped(0, 0, offset & 0xFFFFFFFF, offset >> 32, None)
            if not fn(handle, address, length, ctypes.byref(done), ctypes.byref(ov)):
                raise _fail(call)
            return int(done.value)

        def read_file(self, handle: int, address: int, length: int, offset: int) -> int:
            return self._transfer(self.k.ReadFile, "ReadFile", handle, address, length, offset)

        def write_file(self, handle: int, address: int, length: int, offset: int) -> int:
            return self._transfer(self.k.WriteFile, "WriteFile", handle, address, length, offset)

        def flush_file_buffers(self, handle: int) -> None:
            if not self.k.FlushFileBuffers(handle):
                raise _fail("FlushFileBuffers")

        def virtual_alloc(self, size: int) -> int:
            address = self.k.VirtualAlloc(None, size, _MEM_COMMIT_RESERVE, _PAGE_READWRITE)
            if not address:
                raise _fail("VirtualAlloc")
            return int(address)

        def virtual_free(self, address: int) -> None:
            self.k.VirtualFree(address, 0, _MEM_RELEASE)

        def find_volumes(self) -> list[str]:
            buf = ctypes.create_unicode_buffer(1024)
            h = self.k.FindFirstVolumeW(buf, len(buf))
            if h is None or h == _INVALID_HANDLE:
                raise _fail("FindFirstVolumeW")
            out = [buf.value]
            try:
                while self.k.FindNextVolumeW(h, buf, len(buf)):
                    out.append(buf.value)
                if ctypes.get_last_error() != _ERROR_NO_MORE_FILES:
                    raise _fail("FindNextVolumeW")
            finally:
                self.k.FindVolumeClose(h)
            return out

        def volume_path_names(self, volume: str) -> list[str]:
            need = wintypes.DWORD(1024)
            while True:
                buf = ctypes.create_unicode_buffer(need.value)
                if self.k.GetVolumePathNamesForVolumeNameW(volume, buf, need.value, ctypes.byref(need)):
                    break
                if ctypes.get_last_error() != _ERROR_MORE_DATA:
                    raise _fail("GetVolumePathNamesForVolumeNameW")
            # A list of NUL-terminated strings ending with an empty one.
            return [p for p in ctypes.wstring_at(buf, need.value).split("\0") if p]

        def volume_path_name(self, path: str) -> str:
            buf = ctypes.create_unicode_buffer(_PATH_ROOM)
            if not self.k.GetVolumePathNameW(path, buf, _PATH_ROOM):
                raise _fail("GetVolumePathNameW")
            return str(buf.value)

        def volume_name_for_mount_point(self, mount_point: str) -> str:
            buf = ctypes.create_unicode_buffer(64)
            if not self.k.GetVolumeNameForVolumeMountPointW(mount_point, buf, len(buf)):
                raise _fail("GetVolumeNameForVolumeMountPointW")
            return str(buf.value)

        def system_directory(self) -> str:
            buf = ctypes.create_unicode_buffer(_PATH_ROOM)
            if not self.k.GetSystemDirectoryW(buf, _PATH_ROOM):
                raise _fail("GetSystemDirectoryW")
            return str(buf.value)

        def registry_value(self, key: str, name: str) -> str | list[str] | None:
            try:
                with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as k:
                    value, kind = winreg.QueryValueEx(k, name)
            except OSError:
                return None
            if kind == winreg.REG_MULTI_SZ:
                return [str(v) for v in value]
            return str(value) if kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ) else None
