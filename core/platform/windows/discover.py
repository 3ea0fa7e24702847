"""`rescue disks` on Windows: each ``\\\\.\\PhysicalDriveN`` as a `core.disk.discover.DiskSummary`.

The same facts as on Linux: model, serial, bus (STORAGE_DEVICE_DESCRIPTOR), size and sector sizes,
the partitions as Windows lists them (IOCTL_DISK_GET_DRIVE_LAYOUT_EX), each partition's filesystem,
label and free space read by our own parsers (nothing is mounted or written), and the volumes with
their letters and mount points (the free space of a mounted one then from Windows, with the backup
folders on it). A disk's "in use" lines say what would refuse it as a target (`refuse`). Disk numbers can have gaps (a disk pulled out keeps its number's place empty), so
every number up to `MAX_DISKS` is tried.
"""

from __future__ import annotations

import shutil

from ...disk.discover import BUS_NAMES, DiskSummary, PartitionSummary, _backup_folders, _human_size
from ...errors import Error, TargetRefused
from ...io.reader import WindowReader
from . import c_win as c
from . import query, refuse, volumes
from .disk import open_source
from .seam import Win32, Win32Error, current

MAX_DISKS = 64

# Windows' bus names where they differ from what Linux's listing calls the same bus.
_BUS = {"ata": "sata", "atapi": "sata", "sas": "scsi", "virtual": "virtio", "file": "loop"}


def list_disks(probe: bool = True, *, api: Win32 | None = None) -> list[DiskSummary]:
    """Every disk Windows has, by number. ``probe=False`` skips the filesystem probes."""
    api = api or current()
    all_volumes = volumes.all_volumes(api)
    out = []
    for n in range(MAX_DISKS):
        path = query.drive_path(n)
        try:
            handle = api.create_file(path, c.GENERIC_READ, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
        except Win32Error:
            continue  # no disk with this number
        try:
            f = query.facts(api, handle)
            try:
                layout: query.DriveLayout | None = query.layout(api, handle)
            except Win32Error:
                layout = None
        except (Win32Error, Error):
            continue  # a disk that does not answer its queries is not one to choose
        finally:
            api.close_handle(handle)
        if f.size == 0:
            continue  # a card reader or optical drive with no medium
        bus = _BUS.get(f.bus, f.bus)
        s = DiskSummary(name=path, model=f.model, serial=f.serial, bus=bus, size=f.size,
                        logical_sector_size=f.logical_sector_size, physical_sector_size=f.physical_sector_size,
                        removable=f.removable, read_only=f.read_only)
        _partitions(s, layout, [v for v in all_volumes if n in v.disks()], n, probe, api)
        try:
            # Mounted volumes are normal on Windows (a restore locks them); what "in use" means here is
            # what refuses the disk as a target: the running Windows, the boot medium, a page file.
            refuse.check_target(api, path, n, sources=[], image_paths=[])
        except TargetRefused as e:
            s.busy.append(str(e.kwargs.get("detail", e.message)))
        s.description = f"{BUS_NAMES.get(bus, 'disk')}, {_human_size(f.size)}"
        folders = sum(len(p.backup_folders) for p in s.partitions)
        if folders:
            s.description += f", {folders} backup{'s' if folders != 1 else ''}"
        out.append(s)
    return out


def _partitions(s: DiskSummary, layout: query.DriveLayout | None, vols: list[volumes.Volume], number: int,
                probe: bool, api: Win32) -> None:
    if layout is None:
        s.table = "unreadable: Windows gives no partition layout"
        return
    s.table = {"raw": "no partition table"}.get(layout.style, layout.style)
    for p in layout.partitions:
        ps = PartitionSummary(number=p.number, start=p.start, size=p.size, type_id=p.type_id)
        s.partitions.append(ps)
        mounted = [v for v in vols if any(d == number and start == p.start for d, start, _ in v.extents)]
        if mounted and mounted[0].paths:
            ps.mounted_at = mounted[0].paths[0]
    if probe and s.partitions:
        _probe(s, api)
    for ps in s.partitions:
        if ps.mounted_at:
            ps.backup_folders = _backup_folders(ps.mounted_at)
            try:
                ps.free = shutil.disk_usage(ps.mounted_at).free
            except OSError:
                pass  # keeps what the allocation map said


def _probe(s: DiskSummary, api: Win32) -> None:
    from ...fs.probe import probe_usage

    try:
        disk = open_source(s.name, api=api)
    except Error:
        return
    with disk:
        for ps in s.partitions:
            try:
                # keep_volatile: pagefile.sys and hiberfil.sys count as used, as the filesystem has them
                usage = probe_usage(WindowReader(disk, ps.start, ps.size), type_id=ps.type_id, keep_volatile=True)
            except Error:
                ps.fs = "unreadable"
                continue
            ps.fs, ps.label, ps.has_windows = usage.fs, usage.label, usage.has_windows
            if usage.fs == "ntfs" or usage.fs.startswith("fat"):
                ps.free = max(0, ps.size - usage.used_bytes)
