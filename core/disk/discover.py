"""Which disks does this machine have? A summary per disk for choosing a source or a target.

Disks come from pyudev (subsystem ``block``, DEVTYPE ``disk``), which reads sysfs directly; udev
properties (ID_MODEL, ID_SERIAL_SHORT, ID_BUS, by-id links) are used when the udev database has
them, sysfs attributes otherwise, so discovery works on rescue media without a udev daemon.

Skipped: RAM disks (``ram*``, ``zram*``), loop devices without a backing file, and devices of size
0 (CD/DVD drives and card readers with no medium). Loop devices *with* a backing file are listed:
that is how users with image files (and the tests) see them.

Partitions are read with `core.partition.detect` and `core.fs.probe`; any failure there only makes
the summary say "unreadable", discovery never fails on one odd disk.

An md RAID array (Linux md, Intel RST volumes: `core.disk.md`) is one disk of bus "md" with its level,
state and members (``raid``); each member disk (or partition) names its array (``member_of``) and is
"in use" (`core.disk.safety` refuses it as a target). IMSM containers (size 0) are not listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import Error
from ..io.reader import WindowReader
from ..platform.mounts import Mount, mounts
from ..platform.tools import attempt
from . import md, safety, sysblock

# Partition tables are recognised by the 0x55AA signature at the end of sector 0 (MBR and the GPT
# protective MBR both have it); without it the disk has no partition table.
_SIGNATURE_OFFSET = 510
# blkid reads a few sectors; a disk that takes longer is failing, and listing disks must not hang on it.
BLKID_TIMEOUT = 30.0


@dataclass
class PartitionSummary:
    """One partition as shown to the user."""

    number: int
    start: int
    size: int
    type_id: str
    fs: str = ""  # "ntfs", "fat32", "ext4" (blkid), ... or "unreadable"
    label: str = ""
    has_windows: bool = False
    free: int | None = None  # bytes; None when it cannot be known without writing (see `_free_space`)
    mounted_at: str = ""
    backup_folders: list[str] = field(default_factory=list)  # mounted only: folders holding images
    member_of: str = ""  # the md array this partition is a member of ("/dev/md127")


@dataclass
class RaidSummary:
    """An md array's own facts (`core.disk.md.Array`), for the disk that is the array."""

    level: str  # raid1, raid0, raid10, raid5, linear
    state: str  # md's array_state: readonly (as the rescue media start arrays), clean, active, ...
    metadata: str  # "1.2", "0.90", "imsm" (Intel RST)
    uuid: str
    raid_disks: int
    degraded: int  # members missing or failed
    members: list[str] = field(default_factory=list)  # /dev/sdb, /dev/sdc1 ...


@dataclass
class DiskSummary:
    """One disk as shown to the user when choosing a source or target."""

    name: str  # /dev/sda
    model: str
    serial: str
    bus: str
    size: int
    logical_sector_size: int
    physical_sector_size: int
    removable: bool
    read_only: bool
    by_id: list[str] = field(default_factory=list)
    backing_file: str = ""  # loop devices
    table: str = ""  # "mbr", "gpt", "no partition table", "unreadable: ..."
    partitions: list[PartitionSummary] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # mounted / swap / held (from core.disk.safety)
    description: str = ""  # "USB disk, 500.1 GB": what a person recognises it by
    raid: RaidSummary | None = None  # an md array: its level, state and members
    member_of: str = ""  # the md array this whole disk is a member of ("/dev/md127")


def _human_size(size: int) -> str:
    # Decimal units, as disk vendors label their disks (a "500 GB" disk shows as 500.1 GB).
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def describe(disk: Any) -> str:
    """One line naming a disk for confirmations: "/dev/sdb (Samsung SSD 860, serial S3Z..., 500.1 GB)".

    Accepts a `DiskSummary` or a `core.disk.device.Disk`.
    """
    name = getattr(disk, "name", None) or getattr(disk, "path", "?")
    parts = [p for p in (getattr(disk, "model", ""),) if p]
    serial = getattr(disk, "serial", "")
    if serial:
        parts.append(f"serial {serial}")
    backing = getattr(disk, "backing_file", "")
    if backing:
        parts.append(f"file {backing}")
    parts.append(_human_size(int(getattr(disk, "size", 0))))
    return f"{name} ({', '.join(parts)})"


def _by_id_links(props: dict[str, str], links: list[str], rdev: int) -> list[str]:
    out = sorted(link for link in links if link.startswith("/dev/disk/by-id/"))
    if out:
        return out
    # No udev database: scan /dev/disk/by-id ourselves (present when udev ran at some point).
    by_id = "/dev/disk/by-id"
    try:
        names = sorted(os.listdir(by_id))
    except OSError:
        return []
    for n in names:
        p = os.path.join(by_id, n)
        try:
            if os.stat(p).st_rdev == rdev:
                out.append(p)
        except OSError:
            continue
    return out


def _read_partitions(summary: DiskSummary, probe: bool) -> None:
    from .device import open_source

    try:
        disk = open_source(summary.name)
    except Error as e:
        summary.table = f"unreadable: {e.message}"
        return
    with disk:
        try:
            sector0 = disk.pread(0, 512)
        except Error as e:
            summary.table = f"unreadable: {e.message}"
            return
        if len(sector0) < 512 or sector0[_SIGNATURE_OFFSET:_SIGNATURE_OFFSET + 2] != b"\x55\xaa":
            summary.table = "no partition table"
            return
        # A filesystem on the whole disk ("superfloppy") also ends sector 0 with 0x55AA.
        if sector0[3:11] == b"NTFS    " or sector0[54:59] == b"FAT12" or sector0[54:59] == b"FAT16" \
                or sector0[82:87] == b"FAT32":
            summary.table = "no partition table (filesystem on the whole disk)"
            return
        try:
            from ..partition.detect import read_partition_table
        except ImportError:
            summary.table = "unreadable: partition reader not available"
            return
        try:
            table = read_partition_table(disk, disk.logical_sector_size)
        except Error as e:
            summary.table = f"unreadable: {e.message}"
            return
        if table is None:
            summary.table = "no partition table"
            return
        summary.table = table.scheme
        for p in table.partitions:
            ps = PartitionSummary(number=p.number, start=p.start, size=p.size, type_id=p.type_id)
            if probe:
                _probe_fs(ps, disk, p.start, p.size, p.type_id)
            summary.partitions.append(ps)


def _probe_fs(ps: PartitionSummary, disk: Any, start: int, size: int, type_id: str) -> None:
    try:
        from ..fs.probe import probe_usage
    except ImportError:
        ps.fs = "unreadable"
        return
    try:
        # keep_volatile: pagefile.sys and hiberfil.sys count as used, as the filesystem has them
        usage = probe_usage(WindowReader(disk, start, size), type_id=type_id, keep_volatile=True)
    except Error:
        ps.fs = "unreadable"
        return
    ps.fs, ps.label, ps.has_windows = usage.fs, usage.label, usage.has_windows
    if usage.fs == "ntfs" or usage.fs.startswith("fat"):
        # what the allocation map ($Bitmap, the FAT) leaves unused: known without mounting anything
        ps.free = max(0, size - usage.used_bytes)
    elif usage.fs == "raw":
        ps.fs, ps.label = _blkid(disk.path, start, size)


def _blkid(path: str, start: int, size: int) -> tuple[str, str]:
    """Filesystems we do not parse (ext4, exFAT, swap, ...): their type and label as blkid's low-level
    probe reads them at that offset (no cache, nothing written); ("", "") when it finds none."""
    try:
        out = attempt(["blkid", "-p", "-o", "export", "-O", str(start), "-S", str(size), path], timeout=BLKID_TIMEOUT)
    except Error:
        return "", ""  # blkid not installed: the filesystem stays unnamed
    if not out.ok:
        return "", ""
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return fields.get("TYPE", ""), fields.get("LABEL", "")


def _mounted_partitions(rdev: int, table: list[Mount]) -> dict[int, Mount]:
    """Partition number -> its mount, for the partitions of the disk ``rdev`` that are mounted."""
    out: dict[int, Mount] = {}
    numbered = [(_int(sysblock.read_attr(sysblock.sysfs_dir(p), "partition") or ""), p)
                for p in sysblock.partitions(rdev)]
    for number, prdev in [(0, rdev), *numbered]:  # 0: a filesystem on the whole disk
        for m in table:
            if m.dev == prdev or _rdev(m.source) == prdev:
                out[number] = m
                break
    return out


def _rdev(path: str) -> int | None:
    if not path.startswith("/dev/"):
        return None
    try:
        return os.stat(path).st_rdev
    except OSError:
        return None


# Backup folders are looked for at the top of a mounted filesystem and one level down (`/mnt/usb/pc1`),
# in at most this many folders: listing disks must stay quick on a disk full of folders.
MAX_FOLDERS_SCANNED = 200
MANIFEST_SUFFIX = ".manifest"  # `core.engine.repo`: each committed image has one, named after its id


def _backup_folders(top: str) -> list[str]:
    """Folders at ``top`` or one level below it that hold at least one image manifest (read only)."""
    found: list[str] = []
    queue, scanned = [(top, 0)], 0
    while queue and scanned < MAX_FOLDERS_SCANNED:
        folder, depth = queue.pop(0)
        scanned += 1
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if any(e.name.endswith(MANIFEST_SUFFIX) and e.is_file(follow_symlinks=False) for e in entries):
            found.append(folder)
        if depth < 1:
            queue += [(e.path, depth + 1) for e in sorted(entries, key=lambda e: e.name)
                      if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    return found


def _free_space(summary: DiskSummary, rdev: int, table: list[Mount]) -> None:
    """Free space of mounted partitions from the kernel (statvfs: what a user may still write), which
    also covers filesystems we do not parse; unmounted ones keep what their allocation map said."""
    mounted = _mounted_partitions(rdev, table)
    for ps in summary.partitions:
        m = mounted.get(ps.number)
        if m is None:
            continue
        ps.mounted_at = m.mount_point
        ps.backup_folders = _backup_folders(m.mount_point)
        try:
            st = os.statvfs(m.mount_point)
        except OSError:
            continue
        ps.free = st.f_bavail * st.f_frsize


def _attr(device: Any, name: str) -> str:
    try:
        value = device.attributes.get(name)
    except (OSError, KeyError):
        return ""
    if value is None:
        return ""
    return bytes(value).decode("utf-8", "replace").strip()


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def image_file_summary(path: str, probe: bool = True) -> DiskSummary:
    """A whole-disk image file seen as a disk (``--disk FILE`` in the guide, tests and demos): its
    partitions read as `list_disks` reads a real disk's."""
    path = os.path.abspath(path)
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    summary = DiskSummary(name=path, model="Image file", serial="", bus="file", size=size, logical_sector_size=512,
                          physical_sector_size=512, removable=False, read_only=False)
    _read_partitions(summary, probe)
    return summary


def list_disks(probe: bool = True) -> list[DiskSummary]:
    """Every disk worth showing, sorted by name. ``probe=False`` skips the filesystem probes."""
    import pyudev

    out: list[DiskSummary] = []
    table = mounts()
    for device in pyudev.Context().list_devices(subsystem="block", DEVTYPE="disk"):
        sys_name = str(device.sys_name)
        if sys_name.startswith(("ram", "zram")):
            continue
        try:
            rdev = int(device.device_number)
        except (ValueError, TypeError):
            continue
        backing = sysblock.loop_backing_file(rdev) or ""
        if sys_name.startswith("loop") and not backing:
            continue
        size = _int(_attr(device, "size")) * 512  # sysfs size is in 512-byte units for every disk
        if size == 0:
            continue  # no medium (optical drive, card reader) or nothing attached
        props = {str(k): str(v) for k, v in device.properties.items()}
        model, serial = sysblock.model_serial(rdev)
        name = str(device.device_node or f"/dev/{sys_name}")
        summary = DiskSummary(
            name=name,
            model=model or ("Loop device" if backing else ""),
            serial=serial,
            bus=_bus(sys_name, props),
            size=size,
            logical_sector_size=_int(_attr(device, "queue/logical_block_size"), 512),
            physical_sector_size=_int(_attr(device, "queue/physical_block_size"), 512),
            removable=_attr(device, "removable") == "1",
            read_only=_attr(device, "ro") == "1",
            by_id=_by_id_links(props, [str(link) for link in device.device_links], rdev),
            backing_file=backing,
        )
        if os.path.exists(name):
            summary.busy = safety.busy_reasons(safety.footprint(name, 0, table), table)
        _read_partitions(summary, probe)
        if "No medium found" in summary.table:
            continue  # an optical drive or card reader whose size sysfs still reports without a medium
        if probe and summary.table.startswith("no partition table"):
            # a stick formatted without a partition table: its filesystem shown as "partition" 0
            fs, label = _blkid(name, 0, size)
            if fs:
                summary.partitions.append(PartitionSummary(number=0, start=0, size=size, type_id="", fs=fs,
                                                           label=label))
        if probe:
            _free_space(summary, rdev, table)
        _raid(summary, rdev)
        summary.description = f"{BUS_NAMES.get(summary.bus, 'disk')}, {_human_size(size)}"
        if summary.raid is not None:
            raid = summary.raid
            summary.description = (f"RAID array ({raid.level}, {len(raid.members)} of {raid.raid_disks} "
                                   f"disks, {raid.state}), {_human_size(size)}")
        elif summary.member_of:
            summary.description += f", member of RAID array {summary.member_of}"
        folders = sum(len(p.backup_folders) for p in summary.partitions)
        if folders:
            summary.description += f", {folders} backup{'s' if folders != 1 else ''}"
        out.append(summary)
    out.sort(key=lambda s: s.name)
    return out


def _raid(summary: DiskSummary, rdev: int) -> None:
    """The array this disk is, or the arrays it and its partitions are members of."""
    a = md.array(rdev)
    if a is not None:
        summary.bus = "md"
        summary.raid = RaidSummary(level=a.level, state=a.state, metadata=a.metadata, uuid=a.uuid,
                                   raid_disks=a.raid_disks, degraded=a.degraded, members=a.members)
        return
    holder = md.holding(rdev)
    summary.member_of = holder.name if holder is not None else ""
    numbers = {_int(sysblock.read_attr(sysblock.sysfs_dir(p), "partition") or ""): p
               for p in sysblock.partitions(rdev)}
    for ps in summary.partitions:
        prdev = numbers.get(ps.number)
        holder = md.holding(prdev) if prdev is not None else None
        ps.member_of = holder.name if holder is not None else ""


# What a person calls a disk on each bus.
BUS_NAMES = {"usb": "USB disk", "sata": "SATA disk", "nvme": "NVMe disk", "scsi": "SCSI disk",
             "virtio": "virtual disk", "mmc": "memory card", "loop": "disk image file", "xen": "virtual disk",
             "md": "RAID array"}


def _bus(sys_name: str, props: dict[str, str]) -> str:
    """"usb", "sata", "nvme", ...: from the device's place in sysfs, which the rescue media have without
    a udev daemon (a USB disk is a SCSI disk by its name, and on a USB port by its path); then udev."""
    path = os.path.realpath(f"/sys/block/{sys_name}")
    for marker, bus in (("/usb", "usb"), ("/nvme", "nvme"), ("/virtio", "virtio"), ("/ata", "sata"),
                        ("/mmc", "mmc")):
        if marker in path:
            return bus  # libata names SATA and PATA alike: both are "sata" here
    udev = {"ata": "sata"}.get(props.get("ID_BUS", ""), props.get("ID_BUS", ""))
    return udev or _bus_from_sysfs(sys_name)


def _bus_from_sysfs(sys_name: str) -> str:
    # Without udev, the kernel name is the best hint: sd* (SCSI/SATA/USB), nvme*, vd* (virtio) ...
    for prefix, bus in (("nvme", "nvme"), ("sd", "scsi"), ("vd", "virtio"), ("mmcblk", "mmc"),
                        ("loop", "loop"), ("sr", "scsi"), ("xvd", "xen"), ("md", "md")):
        if sys_name.startswith(prefix):
            return bus
    return ""
