"""The disks the guide offers, named as people recognise them (model, size, serial, what is on them).

With --disk FILE only those image files are offered (tests, demos); otherwise the machine's disks as
`rescue disks` finds them (`core.disk.discover`).
"""

from __future__ import annotations

import os

from core.disk import discover
from core.disk.discover import DiskSummary, describe


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
    """One or two lines: which disk, then what is on it ("Windows on partition 2 (ntfs 'C'), ...")."""
    parts = []
    for p in d.partitions:
        what = p.fs or "?"
        if p.label:
            what += f" '{p.label}'"
        parts.append(f"{what}{' Windows' if p.has_windows else ''}")
    contents = ", ".join(parts) if parts else (d.table or "empty")
    busy = f"  [{', '.join(d.busy)}]" if d.busy else ""
    return f"{describe(d)}{busy}\n    {contents}"
