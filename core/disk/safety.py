"""Is it safe to write to this target? Aliases of the source, mounts, swap, holders, image location.

The one mistake a restore or clone tool must never make is to overwrite the wrong disk. A disk has
many names (``/dev/sdb``, by-id / by-path symlinks, a loop device over an image file, the file
itself through a hard link), so the checks compare *storage*, not paths:

- a **footprint** lists what writing to (or reading from) an object touches: ``exact`` is the
  storage itself (block device numbers; ``(st_dev, st_ino)`` of files, including the backing file of
  a loop device), ``host`` is what that storage is stored on (the device under the filesystem that
  holds a file, followed through loop devices and FUSE mounts such as ntfs-3g).
- two block devices overlap when they are equal or one is a partition of the other (sibling
  partitions do not overlap).
- a target conflicts with a source when their exact sets overlap, or when one is stored on the
  other (target exact vs source host, and the reverse). Two files on the same filesystem share a
  host and do not conflict.

These checks give clear messages before anything is opened for writing; ``O_EXCL`` on the open
(see ``device.open_target``) is the kernel-enforced guard that closes the race behind them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from ..errors import SourceError, TargetRefused
from ..platform.mounts import Mount, mounts, swaps
from . import md, sysblock

# Loop devices over files on filesystems on loop devices ... are followed this deep. Real setups
# have one or two levels; the cap only guards against pathological stacks.
_MAX_DEPTH = 8

Inode = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class Footprint:
    """What an object is (``exact_*``) and what it is stored on (``host_*``)."""

    path: str
    exact_blk: set[int] = field(default_factory=set)
    exact_ino: set[Inode] = field(default_factory=set)
    host_blk: set[int] = field(default_factory=set)
    host_ino: set[Inode] = field(default_factory=set)
    via: str = ""  # for messages: "/dev/loop3 is backed by /x/disk.img"

    def absorb_as_host(self, other: Footprint) -> None:
        """Everything ``other`` is or is stored on becomes storage this object lives on."""
        self.host_blk |= other.exact_blk | other.host_blk
        self.host_ino |= other.exact_ino | other.host_ino


def _host_of(st_dev: int, depth: int, mount_table: list[Mount]) -> Footprint:
    """The storage under the filesystem whose ``st_dev`` is given."""
    fp = Footprint(path=sysblock.dev_name(st_dev))
    if depth >= _MAX_DEPTH:
        return fp
    if sysblock.is_block_device(st_dev):
        fp.absorb_as_host(_device_footprint(st_dev, depth + 1, mount_table))
        return fp
    # Anonymous device numbers (FUSE without fuseblk, btrfs, overlay): the mount source names the
    # device or image file behind it, e.g. ntfs-3g mounting an image file directly.
    for m in mount_table:
        if m.dev == st_dev and m.source.startswith("/") and os.path.exists(m.source):
            fp.absorb_as_host(footprint(m.source, depth + 1, mount_table))
    return fp


def _device_footprint(rdev: int, depth: int, mount_table: list[Mount]) -> Footprint:
    fp = Footprint(path=sysblock.node(rdev), exact_blk={rdev})
    if depth < _MAX_DEPTH:
        # an md array (or device-mapper target) is stored on its members: writing it writes them
        for member in sysblock.slaves(rdev):
            fp.absorb_as_host(_device_footprint(member, depth + 1, mount_table))
    backing = sysblock.loop_backing_file(rdev)
    if backing and depth < _MAX_DEPTH:
        try:
            st = os.stat(backing)
        except OSError:
            return fp  # backing file deleted or in another mount namespace: the device number remains
        fp.exact_ino.add((st.st_dev, st.st_ino))
        fp.via = f"{sysblock.node(rdev)} is backed by {backing}"
        fp.absorb_as_host(_host_of(st.st_dev, depth + 1, mount_table))
    return fp


def footprint(path: str, depth: int = 0, mount_table: list[Mount] | None = None) -> Footprint:
    """Footprint of a path (follows symlinks). A directory or missing path has only a host."""
    table = mounts() if mount_table is None else mount_table
    try:
        st = os.stat(path)
    except OSError:
        parent = os.path.dirname(os.path.abspath(path))
        if parent == path or depth >= _MAX_DEPTH:
            return Footprint(path=path)
        fp = Footprint(path=path)
        fp.absorb_as_host(footprint(parent, depth + 1, table))
        return fp
    if stat.S_ISBLK(st.st_mode):
        fp = _device_footprint(st.st_rdev, depth, table)
        fp.path = path
        return fp
    fp = Footprint(path=path)
    if stat.S_ISREG(st.st_mode):
        fp.exact_ino.add((st.st_dev, st.st_ino))
    fp.absorb_as_host(_host_of(st.st_dev, depth + 1, table))
    return fp


def _blk_overlap(a: set[int], b: set[int]) -> tuple[int, int] | None:
    """A pair (x in a, y in b) that is the same device or disk-and-partition, else None."""
    for x in a:
        for y in b:
            if x == y or sysblock.whole_disk(x) == y or sysblock.whole_disk(y) == x:
                return x, y
    return None


def _exact_overlap(a_blk: set[int], a_ino: set[Inode], b_blk: set[int], b_ino: set[Inode]) -> str | None:
    pair = _blk_overlap(a_blk, b_blk)
    if pair is not None:
        x, y = pair
        if x == y:
            return f"{sysblock.node(x)} is the same device"
        if sysblock.whole_disk(x) == y:
            return f"{sysblock.node(x)} is a partition of {sysblock.node(y)}"
        return f"{sysblock.node(x)} is the disk holding partition {sysblock.node(y)}"
    if a_ino & b_ino:
        return "the same file"
    return None


def _why(text: str, *sides: Footprint) -> str:
    notes = [s.via for s in sides if s.via and s.via not in text]
    return f"{text}; {'; '.join(notes)}" if notes else text


def conflict(target: Footprint, source: Footprint) -> str | None:
    """Why writing ``target`` would touch ``source``, or None."""
    why = _exact_overlap(target.exact_blk, target.exact_ino, source.exact_blk, source.exact_ino)
    if why:
        return _why(f"it is source {source.path} ({why})", target, source)
    why = _exact_overlap(target.exact_blk, target.exact_ino, source.host_blk, source.host_ino)
    if why:
        return _why(f"source {source.path} is stored on it ({why})", target)
    why = _exact_overlap(target.host_blk, target.host_ino, source.exact_blk, source.exact_ino)
    if why:
        return _why(f"it is stored on source {source.path} ({why})", source)
    return None


def _touches(target: Footprint, other: Footprint) -> str | None:
    """Does ``other`` (a mounted device, a swap area, an image path) live in the target's storage?"""
    return (_exact_overlap(target.exact_blk, target.exact_ino, other.exact_blk, other.exact_ino)
            or _exact_overlap(target.exact_blk, target.exact_ino, other.host_blk, other.host_ino))


def busy_reasons(target: Footprint, mount_table: list[Mount] | None = None) -> list[str]:
    """Mounts, swap areas and holders on the target or its partitions (empty = not in use)."""
    table = mounts() if mount_table is None else mount_table
    reasons: list[str] = []
    for m in table:
        if sysblock.is_block_device(m.dev):
            other = _device_footprint(m.dev, 1, table)
        elif m.source.startswith("/") and os.path.exists(m.source) and not os.path.isdir(m.source):
            other = footprint(m.source, 1, table)  # FUSE over an image file or device
        else:
            continue
        why = _touches(target, other)
        if why:
            reasons.append(_why(f"mounted at {m.mount_point} ({m.fs_type} on {m.source}: {why})", other))
    for area in swaps():
        why = _touches(target, footprint(area, 1, table))
        if why:
            reasons.append(f"used as swap ({area}: {why})")
    for rdev in sorted(target.exact_blk):
        for dev in [rdev, *sysblock.partitions(rdev)]:
            array = md.holding(dev)
            if array is not None:
                reasons.append(_member_reason(dev, array))
                continue
            held = sysblock.holders(dev)
            if held:
                reasons.append(f"{sysblock.node(dev)} is held by {', '.join(held)} "
                               "(device-mapper, RAID or LVM)")
    return reasons


def _member_reason(dev: int, array: md.Array) -> str:
    """Why a member of an md array is no target: md keeps its members' copies (mirrors, parity) in step
    and would not see the write, so the array would hold two different disks' worth of data."""
    if array.is_container:
        return (f"{sysblock.node(dev)} is a member of Intel RST container {array.name}: writing to it would "
                f"corrupt the RAID volumes on it; choose the volume (/dev/md...) as the target")
    return (f"{sysblock.node(dev)} is a member of RAID array {array.name} ({array.describe()}): writing "
            f"to it would corrupt the array; choose {array.name} itself as the target, or stop the array "
            f"first (mdadm --stop {array.name})")


def check_target(target_path: str, sources: list[str], image_paths: list[str]) -> Footprint:
    """Raise `TargetRefused` when the target aliases a source, is in use, or holds the images.

    Called before the target is opened for writing, so a refused target never sees a write. Returns the
    target's footprint.
    """
    table = mounts()
    target = footprint(target_path, 0, table)
    for src in sources:
        if not os.path.exists(src):
            raise SourceError(path=src, detail="does not exist")
        why = conflict(target, footprint(src, 0, table))
        if why:
            raise TargetRefused(target=target_path, detail=why)
    # Images before mounts: an image folder on the target implies a mount, and "the image is
    # stored on it" tells the user more than "mounted".
    for img in image_paths:
        why = _touches(target, footprint(img, 0, table))
        if why:
            raise TargetRefused(target=target_path,
                                detail=f"the image {img} is stored on it ({why})")
    busy = busy_reasons(target, table)
    if busy:
        raise TargetRefused(target=target_path, detail="in use: " + "; ".join(busy))
    return target
