"""The Windows disk backend (core/platform/windows) against a Win32 fake that enforces Windows' rules.

The fake (fake_win32.py) serves ``\\\\.\\PhysicalDriveN`` from disk image files made by the real tools
(sfdisk, mkntfs: tests/images.py), so the backend reads real partition tables and NTFS; it refuses what
Windows refuses (unaligned unbuffered I/O: 87; writes past a mounted, unlocked volume: 5) and packs its
IOCTL replies with the backend's own declared structs. Nothing here needs root.
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from core.engine import restore as restore_mod
from core.engine import target as target_mod
from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.errors import TargetRefused, TargetWriteError
from core.platform.windows import c_win as c
from core.platform.windows import disk as windisk
from core.platform.windows import query
from core.platform.windows import seam
from core.platform.windows.discover import list_disks
from core.platform.windows.refuse import CONTROL_KEY, MEMORY_KEY
from core.platform.windows.seam import Win32Error
from core.progress import Progress
from tests.images import small_disk
from tests.platform.windows.fake_win32 import FakeDisk, FakeWin32

SOURCE, TARGET = r"\\.\PhysicalDrive0", r"\\.\PhysicalDrive1"


@pytest.fixture(scope="module")
def disk_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96 MiB MBR disk: an NTFS partition 1 (label "Data") and a partition 2 of type 0x83."""
    return small_disk(tmp_path_factory.mktemp("windisk") / "small.img")


@pytest.fixture
def images(disk_image: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Disk 0: a copy of the small disk; disk 1: another copy (a target with volumes on it)."""
    a, b = tmp_path / "disk0.img", tmp_path / "disk1.img"
    shutil.copyfile(disk_image, a)
    shutil.copyfile(disk_image, b)
    return a, b


def _install(fake: FakeWin32) -> Iterator[FakeWin32]:
    previous = seam.install(fake)
    try:
        yield fake
    finally:
        seam.install(previous)
        fake.close()


@pytest.fixture
def fake(images: tuple[Path, Path]) -> Iterator[FakeWin32]:
    yield from _install(FakeWin32({
        0: FakeDisk(images[0], letters={1: ["E:\\"]}),
        1: FakeDisk(images[1], model="Fake USB Disk", serial="USB0002", bus_type=7, physical=512,
                    letters={1: ["F:\\", "C:\\mnt\\data\\"]}, removable=True),
    }))


def test_structs_are_packed_as_windows_packs_them() -> None:
    # sizeof and field offsets of the x64 SDK headers
    assert c.GET_LENGTH_INFORMATION.size == 8
    assert c.DISK_GEOMETRY_EX.size == 32 and c.DISK_GEOMETRY_EX.offsets["disk_size"][0] == 24
    assert c.STORAGE_PROPERTY_QUERY.size == 12
    assert c.STORAGE_DEVICE_DESCRIPTOR.size == 36 and c.STORAGE_DEVICE_DESCRIPTOR.offsets["bus_type"][0] == 28
    assert c.STORAGE_ACCESS_ALIGNMENT_DESCRIPTOR.size == 28
    assert c.STORAGE_DEVICE_NUMBER.size == 12
    assert c.DriveLayoutHeader.size + c.DRIVE_LAYOUT_INFORMATION_GPT.size == 48  # PartitionEntry[0] at 48
    assert c.DRIVE_LAYOUT_INFORMATION_MBR.size == c.DRIVE_LAYOUT_INFORMATION_GPT.size == 40
    assert c.PARTITION_INFORMATION_EX.size == 144
    assert c.PARTITION_INFORMATION_EX.offsets["starting_offset"][0] == 8
    assert c.PARTITION_INFORMATION_EX.offsets["partition_number"][0] == 24
    assert c.PARTITION_INFORMATION_EX.offsets["style_info"][0] == 32
    assert c.PARTITION_INFORMATION_MBR.size == c.PARTITION_INFORMATION_GPT.size == 112
    assert c.PARTITION_INFORMATION_MBR.offsets["hidden_sectors"][0] == 4
    assert c.DISK_EXTENT.size == 24 and c.DISK_EXTENT.offsets["starting_offset"][0] == 8
    # the control codes winioctl.h defines
    assert (c.IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, c.IOCTL_DISK_GET_LENGTH_INFO, c.IOCTL_DISK_GET_DRIVE_LAYOUT_EX,
            c.IOCTL_DISK_UPDATE_PROPERTIES, c.IOCTL_STORAGE_QUERY_PROPERTY, c.IOCTL_STORAGE_GET_DEVICE_NUMBER,
            c.IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, c.FSCTL_LOCK_VOLUME, c.FSCTL_DISMOUNT_VOLUME) == (
        0x700A0, 0x7405C, 0x70050, 0x70140, 0x2D1400, 0x2D1080, 0x560000, 0x90018, 0x90020)


def test_list_disks(fake: FakeWin32, images: tuple[Path, Path]) -> None:
    disks = list_disks()
    assert [d.name for d in disks] == [SOURCE, TARGET]
    a, b = disks
    assert (a.model, a.serial, a.bus, a.size) == ("Fake SSD 860", "S3Z0FAKE0001", "sata", images[0].stat().st_size)
    assert (a.logical_sector_size, a.physical_sector_size) == (512, 4096)
    assert (b.model, b.serial, b.bus, b.physical_sector_size, b.removable) == ("Fake USB Disk", "USB0002", "usb",
                                                                                512, True)
    assert a.description == "SATA disk, 100.7 MB" and b.description.startswith("USB disk")
    assert a.table == "mbr"
    assert [(p.number, p.start, p.type_id) for p in a.partitions] == [(1, 2048 * 512, "0x07"),
                                                                       (2, a.partitions[1].start, "0x83")]
    p1 = a.partitions[0]
    assert (p1.fs, p1.label, p1.mounted_at) == ("ntfs", "Data", "E:\\")
    assert p1.free is not None and 0 < p1.free < p1.size
    assert b.partitions[0].mounted_at == "F:\\"
    assert a.busy == [] and b.busy == []


def test_list_disks_says_what_refuses_a_disk(images: tuple[Path, Path]) -> None:
    disks = {0: FakeDisk(images[0], letters={1: ["C:\\"]}), 1: FakeDisk(images[1], letters={1: ["D:\\"]})}
    for _ in _install(FakeWin32(disks, system_directory="C:\\Windows\\System32")):
        a, b = list_disks(probe=False)
        assert a.busy == ["holds the running Windows (C:\\Windows\\System32)"] and b.busy == []
        assert a.partitions[0].fs == ""  # not probed


def test_source_is_read_only(fake: FakeWin32, images: tuple[Path, Path]) -> None:
    raw = images[0].read_bytes()
    with windisk.open_source(SOURCE) as d:
        ident = d.identity()
        assert (ident["model"], ident["serial"], ident["size"], ident["dev"]) == (
            "Fake SSD 860", "S3Z0FAKE0001", len(raw), "PhysicalDrive0")
        assert d.pread(0, 512) == raw[:512]
        assert d.pread(3 * 512 + 5, 100) == raw[3 * 512 + 5:3 * 512 + 105]  # unaligned: served aligned
        assert d.pread(len(raw) - 10, 100) == raw[-10:]
        opened = [e for e in fake.log if e[0] == "open" and e[1] == SOURCE]
        assert opened[-1][2] == c.GENERIC_READ  # no write access asked for
        with pytest.raises(TargetWriteError):
            d.pwrite(0, bytes(512))
        # and Windows itself refuses a write through the handle
        address = fake.virtual_alloc(512)
        with pytest.raises(Win32Error) as e:
            fake.write_file(d.handle, address, 512, 0)
        assert e.value.code == c.ERROR_ACCESS_DENIED
        fake.virtual_free(address)
    assert images[0].read_bytes() == raw


def test_fake_enforces_windows_rules(fake: FakeWin32) -> None:
    h = fake.create_file(TARGET, c.GENERIC_READ | c.GENERIC_WRITE, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE,
                         c.FILE_FLAG_NO_BUFFERING)
    address = fake.virtual_alloc(8192)
    for addr, length, offset in ((address, 512, 100), (address, 100, 0), (address + 8, 512, 0)):
        with pytest.raises(Win32Error) as e:
            fake.read_file(h, addr, length, offset)
        assert e.value.code == c.ERROR_INVALID_PARAMETER
    with pytest.raises(Win32Error) as e:  # volume F: is mounted and not locked
        fake.write_file(h, address, 512, 0)
    assert e.value.code == c.ERROR_ACCESS_DENIED
    with pytest.raises(Win32Error) as e:  # the source's share mode does not allow another writer
        fake.create_file(TARGET, c.GENERIC_READ, c.FILE_SHARE_READ, 0)
    assert e.value.code == c.ERROR_SHARING_VIOLATION
    fake.virtual_free(address)
    fake.close_handle(h)


def test_target_locks_and_dismounts_every_volume(fake: FakeWin32, images: tuple[Path, Path]) -> None:
    with windisk.open_target(TARGET, sources=[SOURCE], required_size=1, sector_size=512) as d:
        assert d.locks is not None and d.locks.names == ["F:\\"]
        vol = next(v for v in fake.volumes if v.disk == 1)
        assert vol.locked_by is not None and not vol.mounted
        names = [e[1] for e in fake.log if e[0] == "ioctl"]
        assert names.index("FSCTL_LOCK_VOLUME") < names.index("FSCTL_DISMOUNT_VOLUME")
        write_open = [i for i, e in enumerate(fake.log) if e[0] == "open" and e[1] == TARGET
                      and e[2] & c.GENERIC_WRITE]
        lock = next(i for i, e in enumerate(fake.log) if e[:2] == ("ioctl", "FSCTL_DISMOUNT_VOLUME"))
        assert write_open and write_open[0] > lock  # write access only once every volume is locked
        assert write_open and fake.log[write_open[0]][3] == c.FILE_FLAG_NO_BUFFERING | c.FILE_FLAG_WRITE_THROUGH
        # an unaligned write is read-modified-written in whole sectors, and verified
        assert d.pwrite(1000, b"x" * 700, verify=True) == (1000, 1700)
        d.pwrite(8192, b"y" * 512)  # not asked to verify: read back all the same
        assert fake.log[-2:] == [("write", 1, 8192, 512), ("read", 1, 8192, 512)]
        d.sync()
        assert fake.ioctls("IOCTL_DISK_UPDATE_PROPERTIES")  # sectors 1-3 are the partition table's area
    data = images[1].read_bytes()
    assert data[1000:1700] == b"x" * 700 and data[:1000] == images[0].read_bytes()[:1000]
    assert data[8192:8704] == b"y" * 512
    assert vol.locked_by is None and vol.mounted  # closed: unlocked


@pytest.mark.parametrize("case", ["source", "source-file", "backup-folder", "boot", "system", "pagefile-registry",
                                  "pagefile-in-use", "unlockable"])
def test_refusals(case: str, images: tuple[Path, Path]) -> None:
    disks = {0: FakeDisk(images[0], letters={1: ["E:\\"]}), 1: FakeDisk(images[1], letters={1: ["F:\\"]})}
    kw: dict[str, object] = {}
    sources, image_paths = [SOURCE], ["E:\\pc1\\a.manifest"]
    expect = ""
    if case == "source":
        sources, expect = [TARGET], "is the source"
    elif case == "source-file":
        sources, expect = ["F:\\images\\disk.img"], "holds the source F:\\images\\disk.img"
    elif case == "backup-folder":
        image_paths, expect = ["F:\\pc1\\a.manifest"], "holds the backup folder (F:\\pc1)"
    elif case == "boot":
        kw["registry"], expect = {(CONTROL_KEY, "PEBootRamdiskSourceDrive"): "F:"}, "WinPE started from (F:\\)"
    elif case == "system":
        kw["system_directory"], expect = "F:\\Windows\\System32", "running Windows (F:\\Windows\\System32)"
    elif case == "pagefile-registry":
        kw["registry"] = {(MEMORY_KEY, "PagingFiles"): ["F:\\pagefile.sys 0 0"]}
        expect = "page file F:\\pagefile.sys in use"
    elif case == "pagefile-in-use":
        kw["files_in_use"], expect = {"F:\\pagefile.sys"}, "page file F:\\pagefile.sys in use"
    elif case == "unlockable":
        disks[1].busy, expect = {1}, "volume F:\\ on it cannot be locked"
    for _ in _install(fake := FakeWin32(disks, **kw)):  # type: ignore[arg-type]
        before = images[1].read_bytes()
        with pytest.raises(TargetRefused) as e:
            windisk.open_target(TARGET, sources=sources, required_size=1, sector_size=512, image_paths=image_paths)
        assert expect in e.value.message
        assert e.value.exit_code == 40
        assert not any(e[0] == "write" for e in fake.log)
        assert not any(e[0] == "open" and e[1] == TARGET and e[2] & c.GENERIC_WRITE for e in fake.log)
        assert all(v.locked_by is None for v in fake.volumes)  # nothing left locked
        assert images[1].read_bytes() == before


def test_an_unused_page_file_of_the_old_windows_does_not_refuse(images: tuple[Path, Path]) -> None:
    disks = {0: FakeDisk(images[0]), 1: FakeDisk(images[1], letters={1: ["F:\\"]})}
    for _ in _install(FakeWin32(disks, files={"F:\\pagefile.sys"})):
        with windisk.open_target(TARGET, sources=[SOURCE], required_size=1, sector_size=512) as d:
            assert d.size == images[1].stat().st_size


def test_restore_onto_the_fake_disk_is_bit_exact(disk_image: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "backups"
    backup(str(disk_image), str(folder), BackupOptions(), Progress())
    target, linux = tmp_path / "target.img", tmp_path / "linux.img"
    shutil.copyfile(disk_image, target)
    with open(target, "r+b") as f:  # an old, different disk: other bytes over the start of partition 1
        f.seek(2048 * 512)
        f.write(b"old disk" * (4 << 20 >> 3))
    shutil.copyfile(target, linux)
    target_before = target.read_bytes()
    # The same restore by the Linux backend onto the same old disk: what the Windows one must leave.
    execute_restore(plan_restore(str(folder), None, str(linux), lambda: None, Progress()), Progress())
    blank = tmp_path / "blank.img"  # a new disk: zeros, no partition table, no volume
    with open(blank, "wb") as f:
        f.truncate(len(target_before))
    disks = {0: FakeDisk(target, letters={1: ["F:\\"]}), 1: FakeDisk(blank, model="New SSD", serial="NEW1")}
    # What core.disk.device dispatches to on Windows, bound where the engine imported the Linux names.
    monkeypatch.setattr(restore_mod, "open_target", windisk.open_target)
    monkeypatch.setattr(restore_mod, "check_target_path", windisk.check_target_path)
    monkeypatch.setattr(target_mod, "recheck", windisk.recheck)
    for fake in _install(FakeWin32(disks)):
        plan = plan_restore(str(folder), None, SOURCE, lambda: None, Progress())
        assert plan.target_identity["model"] == "Fake SSD 860" and plan.target_identity["serial"] == "S3Z0FAKE0001"
        result = execute_restore(plan, Progress())
        assert result.verified_bytes > 0
        writes = [i for i, e in enumerate(fake.log) if e[0] == "write"]
        table = [i for i in writes if fake.log[i][2] == 0]
        updates = [i for i, e in enumerate(fake.log) if e[:2] == ("ioctl", "IOCTL_DISK_UPDATE_PROPERTIES")]
        # sector 0 is zeroed first and written last (the table); Windows is told after each
        assert len(table) >= 2 and table[0] < updates[0] and table[-1] < updates[-1]
        assert not [i for i in writes if i > updates[-1]]
        assert fake.ioctls("FSCTL_LOCK_VOLUME") and fake.ioctls("FSCTL_DISMOUNT_VOLUME")
        execute_restore(plan_restore(str(folder), None, TARGET, lambda: None, Progress()), Progress())
    assert blank.read_bytes() == disk_image.read_bytes()  # a blank disk ends as the source, byte for byte
    restored, source = target.read_bytes(), disk_image.read_bytes()
    assert restored == linux.read_bytes()
    # The used clusters and everything outside partition 1 (tables, gap, the raw partition 2) as the
    # source has them; partition 1's free clusters are not restored (nor on Linux).
    p1_end = (2048 + 70144) * 512
    assert restored[:2048 * 512] == source[:2048 * 512] and restored[p1_end:] == source[p1_end:]
    assert restored != target_before


def test_aligned_buffers_really_are(fake: FakeWin32) -> None:
    with windisk.open_source(SOURCE) as d:
        buf = windisk._Aligned(d.api, 4096)
        with buf:
            assert buf.address % 4096 == 0 and ctypes.string_at(buf.address, 4096) == bytes(4096)


def test_device_names_go_to_the_windows_backend(fake: FakeWin32, images: tuple[Path, Path]) -> None:
    # What core.disk.device binds on Windows (routed over its own functions), run here with the fake.
    from core.disk import device
    from core.platform.windows.backend import routed

    source, target, check, again = routed(device.open_source, device.open_target, device.check_target_path,
                                          device.recheck)
    with source(SOURCE) as d:
        assert isinstance(d, windisk.WinDisk) and d.read_only
    with source(str(images[0])) as d:  # an image file stays with the portable file code
        assert isinstance(d, device.Disk) and d.kind == "file"
    with pytest.raises(TargetRefused):
        check(TARGET, sources=[TARGET], image_paths=[])
    with target(TARGET, sources=[SOURCE], required_size=1, sector_size=512) as d:
        assert isinstance(d, windisk.WinDisk)
        again(d)  # the same disk: no refusal


def test_rescue_disks_lists_the_windows_facts(fake: FakeWin32, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from rescue.commands import disks as command

    monkeypatch.setattr(command, "list_disks", list_disks)  # what its import binds on Windows
    result = CliRunner().invoke(command.command, [])
    assert result.exit_code == 0, result.output
    for text in (SOURCE, "SATA disk, 100.7 MB", "Fake SSD 860, serial S3Z0FAKE0001", "mounted on E:\\",
                 TARGET, "USB disk", "[removable]", "'Data'"):
        assert text in result.output


def test_a_gpt_disk_as_windows_lists_it(tmp_path: Path) -> None:
    # The factory's Windows 7 GPT disk (ESP, MSR, Windows), built as root with the real tools.
    from tests.conftest import need_root_tools
    from tests.factory import cached_disk_info, copy_disk

    need_root_tools("sgdisk", "mkntfs", "ntfs-3g")
    info = cached_disk_info("gpt-small")
    image = copy_disk(info.path, tmp_path / "gpt.img")
    number = info.part("windows").number
    for fake in _install(FakeWin32({0: FakeDisk(image, letters={number: ["C:\\"]})})):
        (d,) = list_disks()
        assert d.table == "gpt"
        assert [(p.number, p.start, p.size, p.type_id) for p in d.partitions] == [
            (p.number, p.start, p.size, p.type_id) for p in info.partitions]
        assert [p.fs for p in d.partitions][0] in ("fat16", "fat32")
        windows = next(p for p in d.partitions if p.number == number)
        assert windows.fs == "ntfs" and windows.has_windows and windows.mounted_at == "C:\\"
        # GUIDs and names as Windows reports them (PARTITION_INFORMATION_GPT), disk GUID too
        h = fake.create_file(SOURCE, c.GENERIC_READ, c.FILE_SHARE_READ | c.FILE_SHARE_WRITE, 0)
        layout = query.layout(fake, h)
        fake.close_handle(h)
        assert layout.disk_id == info.disk_id
        assert [(p.guid, p.name) for p in layout.partitions] == [(p.guid, p.name) for p in info.partitions]
        # Windows gives volumes to the ESP and the basic data partition, none to the MSR
        assert sorted(v.partition for v in fake.volumes if v.disk == 0) == sorted(
            p.number for p in info.partitions if p.role in ("esp", "windows"))


def test_backup_from_the_fake_disk(fake: FakeWin32, images: tuple[Path, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from core.engine import backup as backup_mod

    monkeypatch.setattr(backup_mod, "open_source", windisk.open_source)  # what the dispatch binds on Windows
    folder = tmp_path / "backups"
    result = backup(SOURCE, str(folder), BackupOptions(), Progress())
    assert not any(e[0] == "write" for e in fake.log)
    out = tmp_path / "restored.img"
    with open(out, "wb") as f:
        f.truncate(images[0].stat().st_size)
    execute_restore(plan_restore(str(folder), result.image_id, str(out), lambda: None, Progress()), Progress())
    assert out.read_bytes() == images[0].read_bytes()


def test_clone_between_fake_disks(images: tuple[Path, Path], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from core.engine import clone as clone_mod

    blank = tmp_path / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(images[0].stat().st_size)
    # what the dispatch of core.disk.device binds on Windows
    monkeypatch.setattr(clone_mod, "open_source", windisk.open_source)
    monkeypatch.setattr(clone_mod, "open_target", windisk.open_target)
    monkeypatch.setattr(target_mod, "recheck", windisk.recheck)
    disks = {0: FakeDisk(images[0], letters={1: ["C:\\"]}), 1: FakeDisk(blank, model="New SSD", serial="NEW1")}
    for fake in _install(FakeWin32(disks)):
        plan = clone_mod.plan_clone(SOURCE, TARGET, Progress(), scratch=str(tmp_path))
        assert "New SSD" in plan.target_description
        clone_mod.execute_clone(plan, Progress())
        assert {e[1] for e in fake.log if e[0] == "write"} == {1}  # nothing written to the source
        assert fake.ioctls("IOCTL_DISK_UPDATE_PROPERTIES")
        with pytest.raises(TargetRefused):  # and the source is never a target
            clone_mod.plan_clone(SOURCE, SOURCE, Progress(), scratch=str(tmp_path))
    assert blank.read_bytes() == images[0].read_bytes()
