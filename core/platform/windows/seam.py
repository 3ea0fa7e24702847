"""The one seam between the Windows backend and Win32: every kernel32 (and registry) call it makes.

`Win32` is the interface: plain ints, strings and bytes, with buffers passed by address as Windows
takes them (so unbuffered I/O's alignment rule applies to what the backend really passes). A failing
call raises `Win32Error` with GetLastError's code; the backend turns codes into our own errors.

`current()` is the implementation in use: the ctypes binding of kernel32 on Windows (`Kernel32`), or
whatever a test `install`-ed: tests/platform/windows/fake_win32.py, a fake over a disk image file
that enforces Windows' rules.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Generic, Protocol, TypeVar

from ...errors import UnsupportedError


T = TypeVar("T")


class Win32Error(OSError):
    """A Win32 call failed; ``code`` is GetLastError's value."""

    def __init__(self, code: int, call: str) -> None:
        super().__init__(code, f"{call} failed with Windows error {code}")
        self.code = code
        self.call = call


class Win32(Protocol):
    """What the backend calls. Handles are ints; every failure is a `Win32Error`."""

    def create_file(self, path: str, access: int, share: int, flags: int) -> int:
        """CreateFileW(path, access, share, NULL, OPEN_EXISTING, flags, NULL)."""
        ...

    def close_handle(self, handle: int) -> None: ...

    def device_io_control(self, handle: int, code: int, inbuf: bytes, out_size: int) -> bytes:
        """DeviceIoControl; the reply is the bytes Windows returned (at most ``out_size``)."""
        ...

    def read_file(self, handle: int, address: int, length: int, offset: int) -> int:
        """ReadFile of ``length`` bytes into memory at ``address``, at ``offset`` (an OVERLAPPED)."""
        ...

    def write_file(self, handle: int, address: int, length: int, offset: int) -> int:
        """WriteFile of ``length`` bytes from memory at ``address``, at ``offset`` (an OVERLAPPED)."""
        ...

    def flush_file_buffers(self, handle: int) -> None: ...

    def virtual_alloc(self, size: int) -> int:
        """VirtualAlloc(MEM_COMMIT|MEM_RESERVE, PAGE_READWRITE): page-aligned, so sector-aligned."""
        ...

    def virtual_free(self, address: int) -> None: ...

    def find_volumes(self) -> list[str]:
        """FindFirstVolumeW / FindNextVolumeW / FindVolumeClose: ``\\\\?\\Volume{GUID}\\`` names."""
        ...

    def volume_path_names(self, volume: str) -> list[str]:
        """GetVolumePathNamesForVolumeNameW: the letters (``E:\\``) and folders a volume is mounted on."""
        ...

    def volume_path_name(self, path: str) -> str:
        """GetVolumePathNameW: the mount point of the volume holding ``path``."""
        ...

    def volume_name_for_mount_point(self, mount_point: str) -> str:
        """GetVolumeNameForVolumeMountPointW: the ``\\\\?\\Volume{GUID}\\`` name mounted there."""
        ...

    def system_directory(self) -> str:
        """GetSystemDirectoryW (``C:\\Windows\\System32``; ``X:\\Windows\\System32`` on WinPE)."""
        ...

    def registry_value(self, key: str, name: str) -> str | list[str] | None:
        """A REG_SZ or REG_MULTI_SZ value under HKEY_LOCAL_MACHINE; None when it is not there."""
        ...


class Slot(Generic[T]):
    """The implementation in use of one seam: what a test `install`-ed, else the real one, made when
    first asked (only Windows has it)."""

    def __init__(self, real: Callable[[], T]) -> None:
        self._real = real
        self._installed: T | None = None

    def install(self, impl: T | None) -> T | None:
        """Use ``impl`` for every later call (None: the real one again); returns what was in use."""
        previous, self._installed = self._installed, impl
        return previous

    def current(self) -> T:
        if self._installed is None:
            self._installed = self._real()
        return self._installed


def install(api: Win32 | None) -> Win32 | None:
    """Use ``api`` for every later call (None: the real one again); returns what was in use."""
    return _slot.install(api)


def current() -> Win32:
    """The implementation in use: an installed one, else kernel32 itself (Windows only)."""
    return _slot.current()


if sys.platform != "win32":

    def _real() -> Win32:
        raise UnsupportedError(detail="the Windows disk backend needs Windows (or a Win32 fake)")

else:

    def _real() -> Win32:
        from .kernel32 import Kernel32  # here, not at the top: kernel32 imports this module

        return Kernel32()


_slot: Slot[Win32] = Slot(_real)


def c_wstr(value: Any) -> str:
    """A NUL-terminated UTF-16 string field's text (trailing NULs and what follows dropped)."""
    raw = bytes(value)
    text = raw.decode("utf-16-le", "replace")
    return text.split("\0", 1)[0]
