"""Which disks a restore or clone must never write on Windows, each with the reason given to the user.

Disks are compared by number (``\\\\.\\PhysicalDriveN``, from IOCTL_STORAGE_GET_DEVICE_NUMBER), and a
path is mapped to disks through its volume: GetVolumePathNameW -> GetVolumeNameForVolumeMountPointW
-> IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS. Refused (`core.errors.TargetRefused`, as on Linux):

- the target is a source, or holds a source image file;
- it holds the backup folder (any of the image's files, or the folder itself);
- it is the medium WinPE started from. WinPE runs from X:, a RAM disk with no disk under it, so X:
  says nothing; the medium is found two ways, both used: the volume WinPE records it loaded its
  image from (``HKLM\\SYSTEM\\CurrentControlSet\\Control`` ``PEBootRamdiskSourceDrive``, a letter),
  and the volume holding the running program (rescue.exe on the stick, when it runs from there);
- it holds the running Windows (the volume of GetSystemDirectoryW: on WinPE that is X: again, on
  a full Windows the C: disk);
- it holds a page file in use: the ``PagingFiles`` of Memory Management (``?:`` is the system
  volume), and any ``pagefile.sys`` / ``swapfile.sys`` at the root of the target's volumes that
  cannot be opened because the system holds it open (ERROR_SHARING_VIOLATION). A page file of the
  Windows being replaced (the target's old C:) is not in use and does not refuse the disk.

A volume that cannot be locked refuses the target too (`core.platform.windows.volumes.lock_all`).
"""

from __future__ import annotations

import ntpath
import sys

from ...errors import TargetRefused
from . import c_win as c
from . import query, volumes
from .seam import Win32, Win32Error

CONTROL_KEY = r"SYSTEM\CurrentControlSet\Control"
MEMORY_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management"
_PAGE_FILES = ("pagefile.sys", "swapfile.sys")


def disks_of(api: Win32, path: str) -> set[int]:
    """The disks under ``path``: itself when it is ``\\\\.\\PhysicalDriveN``, else its volume's disks."""
    if query.disk_number_of(path) is not None:
        try:
            handle = api.create_file(path, 0, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
        except Win32Error:
            return {query.disk_number_of(path) or 0}
        try:
            return {query.device_number(api, handle)}
        except Win32Error:
            return {query.disk_number_of(path) or 0}
        finally:
            api.close_handle(handle)
    v = volumes.of_path(api, path)
    return v.disks() if v is not None else set()


def _registry_strings(api: Win32, key: str, name: str) -> list[str]:
    value = api.registry_value(key, name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def boot_paths(api: Win32, program: str) -> list[str]:
    """Where WinPE started from: the source drive of its RAM disk, and the running program's folder."""
    out = [d if d.endswith("\\") else d + "\\" for d in _registry_strings(api, CONTROL_KEY, "PEBootRamdiskSourceDrive")
           if d]
    out.append(ntpath.dirname(program) or program)
    return out


def page_file_paths(api: Win32) -> list[str]:
    """The page files the running system uses (``?:`` stands for the system volume)."""
    system = api.system_directory()
    out = []
    for entry in _registry_strings(api, MEMORY_KEY, "PagingFiles") + _registry_strings(api, MEMORY_KEY,
                                                                                       "ExistingPageFiles"):
        path = entry.split(" ", 1)[0].strip()
        if path.startswith("\\??\\"):
            path = path[4:]  # ExistingPageFiles names them in NT form
        if path.startswith("?:"):
            path = system[:2] + path[2:]
        if path:
            out.append(path)
    return out


def _page_file_in_use(api: Win32, path: str) -> bool:
    try:
        handle = api.create_file(path, c.GENERIC_READ, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
    except Win32Error as e:
        return e.code == c.ERROR_SHARING_VIOLATION  # held open by the memory manager
    api.close_handle(handle)
    return False


def check_target(api: Win32, target: str, number: int, *, sources: list[str], image_paths: list[str],
                 program: str = sys.executable) -> None:
    """Refuse disk ``number`` (named ``target``) for any of the reasons in the module docstring."""
    for s in sources:
        if number in disks_of(api, s):
            what = "is the source" if query.disk_number_of(s) is not None else f"holds the source {s}"
            raise TargetRefused(target=target, detail=what)
    for p in image_paths:
        if number in disks_of(api, p):
            raise TargetRefused(target=target, detail=f"holds the backup folder ({ntpath.dirname(p) or p})")
    for p in boot_paths(api, program):
        if number in disks_of(api, p):
            raise TargetRefused(target=target, detail=f"is the disk this WinPE started from ({p})")
    system = api.system_directory()
    if number in disks_of(api, system):
        raise TargetRefused(target=target, detail=f"holds the running Windows ({system})")
    for p in page_file_paths(api):
        if number in disks_of(api, p):
            raise TargetRefused(target=target, detail=f"holds the page file {p} in use")
    for v in volumes.on_disk(api, number):
        for root in v.paths:
            for name in _PAGE_FILES:
                if _page_file_in_use(api, root + name):
                    raise TargetRefused(target=target, detail=f"holds the page file {root}{name} in use")
