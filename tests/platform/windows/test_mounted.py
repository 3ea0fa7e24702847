"""Which folder holds a partition's files on Windows (`core.platform.windows.mounted`), on the Win32 fake.

The fake (fake_win32.py) makes volumes as Windows does, from the partition table sfdisk wrote into a
disk image: one per partition of a type Windows mounts, its extent the partition's bytes, with the
letters and mount folders a test gives it. What is shown: a partition is mapped to its volume by disk
number, offset and length (IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS), never to a neighbour; its root is the
first letter or mount folder, else the volume's GUID path; a volume Windows creates late is waited for;
writing refuses the disk of the running Windows and ends with FlushFileBuffers on the volume's own
handle (opened for writing), a read-only use neither opens it for writing nor flushes; and
`core.platform.ntfs` hands Windows disks to this code and everything else to ntfs-3g. No root needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from core.errors import TargetRefused, TargetWriteError, UnsupportedError
from core.io.reader import FdReader
from core.partition.detect import read_partition_table
from core.platform import files, ntfs
from core.platform.windows import c_win as c
from core.platform.windows import mounted, seam
from core.platform.windows.seam import Win32Error
from tests.platform.windows.fake_win32 import FakeDisk, FakeVolume, FakeWin32

DISK = r"\\.\PhysicalDrive0"
MiB = 1 << 20


def _image(path: Path) -> Path:
    """12 MiB, MBR: two NTFS partitions (type 7) and a Linux one (type 0x83, which Windows does not mount)."""
    with open(path, "wb") as f:
        f.truncate(12 * MiB)
    script = "label: dos\nstart=2048, size=6144, type=7\nstart=8192, size=4096, type=7\nstart=12288, type=83\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(), check=True)
    return path


def _parts(path: Path) -> dict[int, tuple[int, int]]:
    fd = files.open_fd(path, 0)
    try:
        table = read_partition_table(FdReader(fd, path.stat().st_size), 512)
    finally:
        os.close(fd)
    assert table is not None
    return {p.number: (p.start, p.size) for p in table.partitions}


@pytest.fixture
def disks(tmp_path: Path) -> tuple[Path, Path]:
    return _image(tmp_path / "d0.img"), _image(tmp_path / "d1.img")


@pytest.fixture
def fake(disks: tuple[Path, Path]) -> Iterator[FakeWin32]:
    f = FakeWin32({0: FakeDisk(disks[0], letters={1: ["E:\\", "C:\\mnt\\e\\"], 2: ["F:\\"]}),
                   1: FakeDisk(disks[1])})  # disk 1: volumes without letters (WinPE gave it none)
    previous = seam.install(f)
    try:
        yield f
    finally:
        seam.install(previous)
        f.close()


def test_a_partition_maps_to_its_own_volume(fake: FakeWin32, disks: tuple[Path, Path]) -> None:
    p = _parts(disks[0])
    assert p[1] == (1 * MiB, 3 * MiB) and p[2] == (4 * MiB, 2 * MiB)
    v1 = mounted.volume_of(fake, 0, *p[1])
    v2 = mounted.volume_of(fake, 0, *p[2])
    assert v1 is not None and v2 is not None and v1.name != v2.name
    assert mounted.root_of(v1) == "E:\\" and mounted.root_of(v2) == "F:\\"  # the first of its mount points
    assert v1.extents == [(0, 1 * MiB, 3 * MiB)]
    # the same place on the other disk is the other disk's volume, reached by its GUID path (no letter)
    other = mounted.volume_of(fake, 1, *p[1])
    assert other is not None and other.paths == [] and other.name not in (v1.name, v2.name)
    assert mounted.root_of(other) == other.name and other.name.startswith("\\\\?\\Volume{") and \
        other.name.endswith("}\\")
    # nothing that only overlaps: another length, another start, a partition Windows does not mount
    assert mounted.volume_of(fake, 0, 1 * MiB, 2 * MiB) is None
    assert mounted.volume_of(fake, 0, 2 * MiB, 3 * MiB) is None
    assert mounted.volume_of(fake, 0, *p[3]) is None
    assert mounted.volume_of(fake, 5, *p[1]) is None


def test_a_volume_spread_over_two_extents_is_no_partitions(fake: FakeWin32, disks: tuple[Path, Path]) -> None:
    p = _parts(disks[0])
    span = FakeVolume(name="\\\\?\\Volume{5a5a5a5a-0000-0000-0000-000000000001}\\", disk=0, partition=1,
                      start=p[1][0], length=p[1][1], paths=["S:\\"])
    fake.volumes.insert(0, span)
    original = fake._volume_ioctl

    def two_extents(handle: int, h: object, code: int) -> bytes:
        if getattr(h, "key") == span.name and code == c.IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS:
            return (c.DiskExtentsHeader.build(number_of_disk_extents=2)
                    + c.DISK_EXTENT.build(disk_number=0, starting_offset=p[1][0], extent_length=p[1][1])
                    + c.DISK_EXTENT.build(disk_number=1, starting_offset=p[1][0], extent_length=p[1][1]))
        return original(handle, h, code)  # type: ignore[arg-type]

    fake._volume_ioctl = two_extents  # type: ignore[method-assign]
    v = mounted.volume_of(fake, 0, *p[1])
    assert v is not None and mounted.root_of(v) == "E:\\"


def test_a_volume_windows_creates_late_is_waited_for(fake: FakeWin32, disks: tuple[Path, Path]) -> None:
    p = _parts(disks[0])
    late = [v for v in fake.volumes if v.disk == 0 and v.partition == 1]
    fake.volumes = [v for v in fake.volumes if v not in late]
    slept: list[float] = []

    def sleep(s: float) -> None:  # Windows mounts it after the third look
        slept.append(s)
        if len(slept) == 3:
            fake.volumes += late

    v = mounted.find_volume(fake, 0, *p[1], sleep=sleep)
    assert v is not None and v.paths == ["E:\\", "C:\\mnt\\e\\"] and len(slept) == 3
    assert mounted.find_volume(fake, 0, *p[3], wait=0, sleep=sleep) is None and len(slept) == 3


def test_writing_refuses_the_running_windows_and_flushes_the_volume(fake: FakeWin32,
                                                                   disks: tuple[Path, Path]) -> None:
    p = _parts(disks[0])
    name = next(v.name for v in fake.volumes if v.disk == 0 and v.partition == 1)
    with mounted.mounted_partition(DISK, *p[1], 1, readonly=True, wait=0) as root:
        assert root == "E:\\"
    # a read-only use never opens the volume for writing, nor flushes it
    assert not [e for e in fake.log if e[0] == "flush"]
    assert not [e for e in fake.log if e[0] == "open" and e[2] & c.GENERIC_WRITE]
    with mounted.mounted_partition(DISK, *p[1], 1, readonly=False, wait=0) as root:
        assert root == "E:\\"
        assert not [e for e in fake.log if e[0] == "flush"]  # not before the files are written
    assert fake.log[-1] == ("flush", name)
    opened = [e for e in fake.log if e[0] == "open" and e[1] == name.rstrip("\\")]
    assert opened[-1][2] == c.GENERIC_READ | c.GENERIC_WRITE
    assert not fake.handles  # every handle closed, the flush's too
    # nothing is locked or dismounted: the files are written through the mounted volume
    assert not fake.ioctls("FSCTL_LOCK_VOLUME") and not fake.ioctls("FSCTL_DISMOUNT_VOLUME")

    fake.system = "F:\\Windows\\System32"  # this disk holds the running Windows: never written
    with pytest.raises(TargetRefused, match="holds the running Windows"):
        with mounted.mounted_partition(DISK, *p[1], 1, readonly=False, wait=0):
            pass
    with mounted.mounted_partition(DISK, *p[1], 1, readonly=True, wait=0) as root:  # reading it is fine
        assert root == "E:\\"


def test_unmounted_partitions_disk_files_and_a_failed_flush(fake: FakeWin32, disks: tuple[Path, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    p = _parts(disks[0])
    with pytest.raises(UnsupportedError, match="partition 3 of .* has no volume Windows mounted"):
        with mounted.mounted_partition(DISK, *p[3], 3, readonly=True, wait=0):
            pass
    with pytest.raises(UnsupportedError, match="disk image file"):
        with mounted.mounted_partition("C:\\disk.img", *p[1], 1, readonly=True, wait=0):
            pass

    def gone(handle: int) -> None:  # a disk pulled out: Windows answers ERROR_NOT_READY
        raise Win32Error(c.ERROR_NOT_READY, "FlushFileBuffers")

    monkeypatch.setattr(fake, "flush_file_buffers", gone)
    with pytest.raises(TargetWriteError, match="flushing the volume failed .Windows error 21."):
        with mounted.mounted_partition(DISK, *p[1], 1, readonly=False, wait=0):
            pass
    # a body that failed keeps its own error; the flush is still tried
    with pytest.raises(KeyError):
        with mounted.mounted_partition(DISK, *p[1], 1, readonly=False, wait=0):
            raise KeyError("the edit's own failure")
    assert not fake.handles


def test_the_platform_choice(fake: FakeWin32, disks: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """core.platform.ntfs: on Windows a disk name goes to the mounted volume, a disk file to ntfs-3g,
    which Windows lacks (refused in one line at the plan, before anything is written)."""
    p = _parts(disks[0])

    def no(detail: str) -> Exception:
        return AssertionError(detail)

    monkeypatch.setattr(sys, "platform", "win32")
    with ntfs.ntfs_root(DISK, *p[2], 2, readonly=True, error=no, refused=no) as root:
        assert str(root) == "F:\\"
    ntfs.require_ntfs_files(DISK, "rescue adapt")
    with pytest.raises(UnsupportedError, match="rescue adapt needs ntfs-3g, a Linux tool that is not available"):
        ntfs.require_ntfs_files("C:\\disk.img", "rescue adapt")
    monkeypatch.undo()
    # on Linux a \\.\PhysicalDriveN name is no disk at all: ntfs-3g's path, which fails on it
    assert not ntfs._windows_disk(DISK)
