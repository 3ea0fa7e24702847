"""md RAID arrays as the kernel shows them: which device is an array, which disks are its members.

Linux md arrays and Intel RST / VMD "RAID On" volumes (IMSM metadata) are both md devices
(``/dev/mdN``), described in sysfs under ``/sys/block/mdN/md`` (``level``, ``array_state``,
``raid_disks``, ``degraded``, ``metadata_version``, ``uuid``); the devices an array is built on are its
``slaves`` (and each member's ``holders`` names the array). An IMSM *container* is an md device too, of
level ``container`` and size 0, that holds the member disks; the volumes inside it are the arrays a
user sees, with the same disks as their own members.

The rescue media assemble every array read-only (linux-live/raid): a source must never be written, not
even by md's superblock updates. A restore onto an array makes it writable with `make_writable`, which
the target session calls only after the user confirmed that array as the target. Writing to a member
of an active array would corrupt the array (md does not see the write, its mirrors and parity no
longer agree): `core.disk.safety` refuses that, naming the array.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import TargetRefused
from ..platform.tools import attempt
from . import sysblock

# md refuses writes to an array in this state; "read-auto" (started read-only by the kernel, not by
# mdadm --readonly) becomes writable on its own at the first write.
READ_ONLY_STATE = "readonly"
CONTAINER = "container"


@dataclass
class Array:
    """One md device: an array, or an IMSM container (level "container")."""

    name: str  # /dev/md127
    rdev: int
    level: str  # raid0, raid1, raid10, raid5, linear, container
    state: str  # md's array_state: clean, active, readonly, read-auto, inactive ...
    raid_disks: int
    degraded: int  # members missing or failed (0 for a complete array)
    metadata: str  # "1.2", "0.90", "imsm" (Intel RST)
    uuid: str
    members: list[str] = field(default_factory=list)  # /dev/sdb, /dev/sdc1 ...
    member_rdevs: list[int] = field(default_factory=list)

    @property
    def is_container(self) -> bool:
        return self.level == CONTAINER

    @property
    def read_only(self) -> bool:
        return self.state == READ_ONLY_STATE

    def describe(self) -> str:
        """"raid1, 2 disks, readonly" (degraded arrays say so)."""
        parts = [self.level, f"{self.raid_disks} disks"]
        if self.degraded:
            parts.append(f"degraded: {self.degraded} missing")
        parts.append(self.state)
        return ", ".join(p for p in parts if p)


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return 0


def _metadata(mdattrs: str) -> str:
    """"1.2", or for external metadata the format's name: a volume says "external:/md127/0", naming
    its container, whose own metadata_version says "external:imsm"."""
    version = sysblock.read_attr(mdattrs, "metadata_version") or ""
    if not version.startswith("external:"):
        return version
    ext = version.removeprefix("external:")
    if ext.startswith(("/", "-")):  # a volume: "/md127/0" ("-" while its metadata is being updated)
        container = ext[1:].split("/", 1)[0]
        outer = sysblock.read_attr(f"/sys/block/{container}/md", "metadata_version") or ""
        return outer.removeprefix("external:") or "external"
    return ext


def array(rdev: int) -> Array | None:
    """The md array (or container) that is the block device ``rdev``; None for any other device."""
    d = sysblock.sysfs_dir(rdev)
    if d is None or not os.path.isdir(os.path.join(d, "md")):
        return None
    mdattrs = os.path.join(d, "md")
    slaves = sysblock.slaves(rdev)
    return Array(name=f"/dev/{os.path.basename(d)}", rdev=rdev,
                 level=sysblock.read_attr(mdattrs, "level") or "",
                 state=sysblock.read_attr(mdattrs, "array_state") or "",
                 raid_disks=_int(sysblock.read_attr(mdattrs, "raid_disks")),
                 degraded=_int(sysblock.read_attr(mdattrs, "degraded")),
                 metadata=_metadata(mdattrs), uuid=sysblock.md_uuid(d),
                 members=[sysblock.node(s) for s in slaves], member_rdevs=slaves)


def holding(rdev: int) -> Array | None:
    """The array ``rdev`` (a disk or partition) is a member of: an IMSM volume before its container,
    the container when no volume of it is running; None when no md device holds it."""
    found: list[Array] = []
    for name in sysblock.holders(rdev):
        number = sysblock.device_number(f"/sys/class/block/{name}")
        a = array(number) if number is not None else None
        if a is not None:
            found.append(a)
    found.sort(key=lambda a: a.is_container)
    return found[0] if found else None


def make_writable(path: str, rdev: int) -> bool:
    """Switch the array ``rdev`` from read-only to read-write (``mdadm --readwrite``, which also starts
    mdmon for IMSM volumes, whose metadata mdmon keeps up to date while they are written). True when
    it was read-only; `TargetRefused` when it stays so. Call only for a target the user confirmed."""
    a = array(rdev)
    if a is None or not a.read_only:
        return False
    # mdmon reads the RST metadata again: as linux-live/raid, also off an Intel RST controller
    out = attempt(["mdadm", "--readwrite", path], env={"IMSM_NO_PLATFORM": "1"})
    a = array(rdev)
    if a is None or a.read_only:
        why = out.detail or "its state is still readonly"
        raise TargetRefused(target=path, detail=f"the array could not be made writable ({why})")
    return True
