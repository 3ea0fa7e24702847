"""How `core.disk.device` plugs the Windows backend in: by the name the user gives.

On Windows a disk is named ``\\\\.\\PhysicalDriveN`` and goes to `core.platform.windows.disk`; any
other name is a disk image file and stays with the portable file code of `core.disk.device`. `routed`
wraps that module's four entry points once, at its import on Windows (the one place the platform is
chosen), so the engine calls the same names everywhere.
"""

from __future__ import annotations

from typing import Any, Callable

from . import disk as win
from .query import disk_number_of

Fn = Callable[..., Any]


def routed(open_source: Fn, open_target: Fn, check_target_path: Fn, recheck: Fn) -> tuple[Fn, Fn, Fn, Fn]:
    """The four functions, sending device names to the Windows backend and files to the given ones."""

    def source(path: str, sector_size: int | None = None) -> Any:
        if disk_number_of(path) is not None:
            return win.open_source(path, sector_size)
        return open_source(path, sector_size)

    def target(path: str, **kw: Any) -> Any:
        return (win.open_target if disk_number_of(path) is not None else open_target)(path, **kw)

    def check(path: str, **kw: Any) -> Any:
        return (win.check_target_path if disk_number_of(path) is not None else check_target_path)(path, **kw)

    def again(disk: Any) -> None:
        (win.recheck if isinstance(disk, win.WinDisk) else recheck)(disk)

    for new, old in ((source, open_source), (target, open_target), (check, check_target_path), (again, recheck)):
        new.__doc__, new.__name__ = old.__doc__, old.__name__
    return source, target, check, again
