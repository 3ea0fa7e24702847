"""The disks the guide offers, named as people recognise them (model, size, serial, what is on them).

With --disk FILE only those image files are offered (tests, demos); otherwise the machine's disks as
`rescue disks` finds them (`core.disk.discover`; on Windows `core.platform.windows.discover`, which
names them \\\\.\\PhysicalDriveN).
"""

from __future__ import annotations

import sys

from core.disk import discover
from core.disk.discover import DiskSummary, describe

from .ui import human


def disks(files: list[str]) -> list[DiskSummary]:
    if files:
        return [discover.image_file_summary(f) for f in files]
    if sys.platform == "win32":
        from core.platform.windows.discover import list_disks
        return list_disks()
    return discover.list_disks()


def label(d: DiskSummary) -> str:
    """Two lines (or more, wrapped): which disk, then what it is and what is on it ("USB disk, 500.1 GB,
    2 backups; 1: ntfs 'Backup' 465.8 GiB (300.0 GiB free)")."""
    parts = []
    for p in d.partitions:
        what = f"{p.number}: {p.fs or 'other'}"
        if p.label:
            what += f" '{p.label}'"
        what += f"{' Windows' if p.has_windows else ''} {human(p.size)}"
        if p.free is not None:
            what += f" ({human(p.free)} free)"
        parts.append(what)
    contents = ", ".join(parts) if parts else (d.table or "empty")
    if d.description:  # "USB disk, 500.1 GB, 2 backups"
        contents = f"{d.description}; {contents}"
    busy = f"  [{', '.join(d.busy)}]" if d.busy else ""
    return f"{describe(d)}{busy}\n    {contents}"
