"""The disks the guide offers, named as people recognise them (model, size, serial, what is on them).

With --disk FILE only those image files are offered (tests, demos); otherwise the machine's disks as
`rescue disks` finds them (`core.disk.discover`).
"""

from __future__ import annotations

import os

from core.disk import discover
from core.disk.discover import DiskSummary, describe

from .ui import human


def disks(files: list[str]) -> list[DiskSummary]:
    if not files:
        return discover.list_disks()
    out = []
    for f in files:
        path = os.path.abspath(f)
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        s = DiskSummary(name=path, model="Image file", serial="", bus="file", size=size, logical_sector_size=512,
                        physical_sector_size=512, removable=False, read_only=False)
        discover._read_partitions(s, True)  # the same reading `rescue disks` does for real disks
        out.append(s)
    return out


def label(d: DiskSummary) -> str:
    """Two lines: which disk, then what is on it ("1: ntfs 'System' 100.0 MiB, 2: ntfs Windows 40.0 GiB")."""
    parts = []
    for p in d.partitions:
        what = f"{p.number}: {p.fs or 'other'}"
        if p.label:
            what += f" '{p.label}'"
        what += f"{' Windows' if p.has_windows else ''} {human(p.size)}"
        free = getattr(p, "free", None)  # known for NTFS and FAT from their allocation maps
        if free is not None:
            what += f" ({human(free)} free)"
        parts.append(what)
    contents = ", ".join(parts) if parts else (d.table or "empty")
    busy = f"  [{', '.join(d.busy)}]" if d.busy else ""
    return f"{describe(d)}{busy}\n    {contents}"
