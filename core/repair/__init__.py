"""Offline boot repair of Windows disks: boot records, BCD devices, drive letters, rebuild.

`repair_disk` is the API restore/clone call after laying out partitions; `rebuild_disk_bcd` writes a
fresh store like bcdboot; `show_disk` decodes and resolves every boot entry. Modules: `layout` (roles
and identities), `volumes` (files through ntfs-3g and mtools), `bootrecords`, `bcdfix`, `letters`,
`rebuild`, `report`, `engine`. Nothing here prints or prompts.
"""

from __future__ import annotations

from .engine import rebuild_disk_bcd, repair_disk, show_disk
from .report import Change, RepairReport, ShowReport

__all__ = ["Change", "RepairReport", "ShowReport", "rebuild_disk_bcd", "repair_disk", "show_disk"]
