"""What the kernel says about a block device: sysfs attributes, udev properties and block ioctls.

Devices are named by their device number (``st_rdev``), never by path, because one disk has many
paths (``/dev/sdb``, ``/dev/disk/by-id/...``, ``/dev/disk/by-path/...``) and the safety checks must
see through all of them. Everything here works without a running udev daemon: udev properties are
used when the udev database has them, sysfs attributes otherwise (rescue media often boot without
udev, and containers have no udev database at all).

Nothing here opens a device for writing.
"""

from __future__ import annotations

import os
import struct

# Block ioctls from <linux/fs.h>.
BLKROGET = 0x125E  # _IO(0x12, 94): int, 1 when the device is read-only
BLKFLSBUF = 0x1261  # _IO(0x12, 97): flush and drop the buffer cache
BLKSSZGET = 0x1268  # _IO(0x12, 104): int, logical sector size
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t): u64, size in bytes
BLKPBSZGET = 0x127B  # _IO(0x12, 123): unsigned int, physical sector size
BLKZEROOUT = 0x127F  # _IO(0x12, 127): u64[2] {start, length}: zero a range (the device may offload it)

SYS_DEV_BLOCK = "/sys/dev/block"

# A sysfs attribute is a short text (a size, a model name); the cap keeps a strange file (a binary
# VPD page, a pseudo-file that never ends) from being read whole.
_ATTR_CAP = 4096


def ioctl_int(fd: int, request: int, fmt: str = "i") -> int:
    """Run a block ioctl that returns one integer of struct format ``fmt``."""
    import fcntl  # here, not at the top: `safety` imports this module on Windows too, which has no fcntl
    buf = bytearray(struct.calcsize(fmt))
    fcntl.ioctl(fd, request, buf, True)
    return int(struct.unpack(fmt, buf)[0])


def dev_name(rdev: int) -> str:
    """``"M:m"`` for a device number (Windows, where a file's st_dev is its volume's serial number and
    os.major does not exist: that number in hex; no sysfs path is ever found for it)."""
    if not hasattr(os, "major"):
        return f"{rdev:#x}"
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def sysfs_dir(rdev: int) -> str | None:
    """The canonical sysfs directory of a block device (``/sys/devices/.../block/sda/sda1``)."""
    link = os.path.join(SYS_DEV_BLOCK, dev_name(rdev))
    if not os.path.exists(link):
        return None
    return os.path.realpath(link)


def read_attr(directory: str | None, name: str) -> str | None:
    """One sysfs attribute, stripped; None when absent or unreadable."""
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read(_ATTR_CAP)
    except OSError:
        return None
    return data.decode("utf-8", "replace").strip()


def _read_dev_attr(directory: str) -> int | None:
    text = read_attr(directory, "dev")
    if not text or ":" not in text:
        return None
    major, _, minor = text.partition(":")
    try:
        return os.makedev(int(major), int(minor))
    except ValueError:
        return None


def device_number(directory: str) -> int | None:
    """The device number a sysfs block directory names in its ``dev`` attribute (``8:16``)."""
    return _read_dev_attr(directory)


def is_block_device(rdev: int) -> bool:
    """True when the kernel has a block device with this number (not an anonymous fs device)."""
    return sysfs_dir(rdev) is not None


def kernel_name(rdev: int) -> str:
    """``sda1`` / ``loop3`` / ``"M:m"`` when the device is unknown."""
    d = sysfs_dir(rdev)
    return os.path.basename(d) if d else dev_name(rdev)


def node(rdev: int) -> str:
    """The conventional device node path, for messages."""
    d = sysfs_dir(rdev)
    return f"/dev/{os.path.basename(d)}" if d else f"block device {dev_name(rdev)}"


def whole_disk(rdev: int) -> int:
    """The disk a partition belongs to; the device itself when it is a whole disk."""
    d = sysfs_dir(rdev)
    if d is None or not os.path.exists(os.path.join(d, "partition")):
        return rdev
    parent = _read_dev_attr(os.path.dirname(d))
    return parent if parent is not None else rdev


def partitions(rdev: int) -> list[int]:
    """Device numbers of the partitions of a whole disk (empty for a partition)."""
    d = sysfs_dir(rdev)
    if d is None or os.path.exists(os.path.join(d, "partition")):
        return []
    out: list[int] = []
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        return []
    for entry in entries:
        sub = os.path.join(d, entry)
        if os.path.exists(os.path.join(sub, "partition")):
            number = _read_dev_attr(sub)
            if number is not None:
                out.append(number)
    return out


def holders(rdev: int) -> list[str]:
    """Kernel names of devices built on top of this one (device-mapper, md RAID, bcache ...)."""
    d = sysfs_dir(rdev)
    if d is None:
        return []
    try:
        return sorted(os.listdir(os.path.join(d, "holders")))
    except OSError:
        return []


def slaves(rdev: int) -> list[int]:
    """Device numbers of the devices this one is built on (an md array's members, a device-mapper
    target's disks); empty for a disk or partition."""
    d = sysfs_dir(rdev)
    if d is None:
        return []
    try:
        names = sorted(os.listdir(os.path.join(d, "slaves")))
    except OSError:
        return []
    numbers = [_read_dev_attr(os.path.join(d, "slaves", n)) for n in names]
    return [n for n in numbers if n is not None]


def loop_backing_file(rdev: int) -> str | None:
    """The backing file of a loop device (or of the loop disk a partition belongs to), else None."""
    d = sysfs_dir(whole_disk(rdev))
    text = read_attr(os.path.join(d, "loop") if d else None, "backing_file")
    if not text:
        return None
    # The kernel appends " (deleted)" when the file was unlinked after attaching.
    return text.removesuffix(" (deleted)")


def sysfs_size(rdev: int) -> int:
    """Size in bytes from sysfs (``size`` is always in 512-byte units, whatever the sector size)."""
    text = read_attr(sysfs_dir(rdev), "size")
    try:
        return int(text) * 512 if text else 0
    except ValueError:
        return 0


def _udev_properties(rdev: int) -> dict[str, str]:
    """udev properties (ID_MODEL, ID_SERIAL_SHORT, ID_BUS ...) when the udev database has them."""
    try:
        import pyudev

        device = pyudev.Devices.from_device_number(pyudev.Context(), "block", rdev)
        return {str(k): str(v) for k, v in device.properties.items()}
    except (ImportError, OSError, ValueError, LookupError):
        # pyudev raises DeviceNotFoundError (a LookupError) for unknown numbers; no udev at all is
        # a normal situation on rescue media.
        return {}


def md_uuid(directory: str) -> str:
    """An md array's UUID from its sysfs directory; "" when md keeps none (Intel RST volumes: all zeros)."""
    text = read_attr(os.path.join(directory, "md"), "uuid") or ""
    return "" if not text.strip("0-") else text


def _vpd_serial(devdir: str) -> str:
    """Unit serial number from SCSI VPD page 0x80 (4-byte header, then ASCII)."""
    try:
        with open(os.path.join(devdir, "vpd_pg80"), "rb") as f:
            data = f.read(_ATTR_CAP)
    except OSError:
        return ""
    if len(data) < 4 or data[1] != 0x80:
        return ""
    length = int.from_bytes(data[2:4], "big")
    return data[4:4 + length].decode("ascii", "replace").strip()


def model_serial(rdev: int) -> tuple[str, str]:
    """(model, serial) of the disk holding ``rdev``; empty strings when the kernel does not say."""
    disk = whole_disk(rdev)
    props = _udev_properties(disk)
    model = props.get("ID_MODEL", "").replace("_", " ").strip()
    serial = props.get("ID_SERIAL_SHORT", "").strip()
    d = sysfs_dir(disk)
    if d is not None and os.path.isdir(os.path.join(d, "md")):
        # An md array has no hardware to name: its level, and the array's UUID as its serial (the same
        # array, wherever its members are attached, keeps it; an incremental chain recognises it).
        level = read_attr(os.path.join(d, "md"), "level") or "md"
        return model or f"md {level} array", serial or md_uuid(d)
    if d is not None:
        devdir = os.path.join(d, "device")
        if not model:
            vendor = read_attr(devdir, "vendor") or ""
            name = read_attr(devdir, "model") or ""
            # virtio reports a PCI vendor id ("0x1af4") as vendor: not a model name.
            model = name if not vendor or vendor.startswith("0x") else f"{vendor} {name}".strip()
        if not serial:
            serial = (read_attr(d, "serial") or read_attr(devdir, "serial") or _vpd_serial(devdir))
    return model, serial
