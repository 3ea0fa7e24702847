"""Target safety (R-40..R-42): open_target must refuse every alias of the source, busy and unfit targets.

Security property guarded here: a restore or clone never writes to the source disk, to a disk in use,
or to the disk holding the image files. Every case uses real loop devices, real files and a real
ntfs-3g mount; each refusal is a `TargetRefused` naming the target and the reason.

Not covered (kernel lacks the feature on the test machine, sysfs is not faked on purpose):
- "held by another device" (needs device-mapper/md to create a holder);
- "partition of the source disk" / "whole disk of a source partition" through kernel partitions
  (loop devices here get no partitions); the offset-loop case below covers a partition-like alias.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from core.disk.device import open_target
from core.errors import TargetRefused
from tests.conftest import need_root_tools
from tests.disk.loops import _run, loop

MiB = 1 << 20


@contextlib.contextmanager
def ntfs_mounted(dev: str, mnt: Path) -> Iterator[Path]:
    """mkntfs on ``dev`` and mount it with ntfs-3g; unmount in finally."""
    _run(["mkntfs", "-Fq", "-s", "512", dev])
    mnt.mkdir()
    _run(["ntfs-3g", dev, str(mnt)])
    try:
        yield mnt
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


def make_file(path: Path, size: int) -> Path:
    _run(["truncate", "-s", str(size), str(path)])
    return path


def refused(target: str, *, sources: list[str], required: int = 4 * MiB, sector: int = 512,
            images: list[str] | None = None) -> str:
    """open_target must raise TargetRefused; return the message."""
    with pytest.raises(TargetRefused) as info:
        disk = open_target(target, sources=sources, required_size=required, sector_size=sector,
                           image_paths=images or [])
        disk.close()  # only reached on a failed test: do not leak the fd
    msg = str(info.value)
    assert target in msg
    return msg


# --- aliases of the source --------------------------------------------------------------------------


def test_symlink_to_source_file_is_refused(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    link = tmp_path / "alias.img"
    link.symlink_to(src)
    msg = refused(str(link), sources=[str(src)])
    assert "the same file" in msg


def test_hardlink_of_source_file_is_refused(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    hard = tmp_path / "hard.img"
    os.link(src, hard)
    msg = refused(str(hard), sources=[str(src)])
    assert "the same file" in msg and str(src) in msg


def test_unrelated_file_is_accepted(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    dst = make_file(tmp_path / "dst.img", 8 * MiB)
    with open_target(str(dst), sources=[str(src)], required_size=8 * MiB, sector_size=512) as disk:
        assert disk.kind == "file" and disk.size == 8 * MiB and not disk.read_only


@pytest.mark.root
def test_loop_device_backed_by_source_file_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    with loop(src) as dev:
        msg = refused(dev, sources=[str(src)])  # target = loop, source = its file
        assert "the same file" in msg
        # ... and the reverse: source = loop device, target = the file behind it
        msg = refused(str(src), sources=[dev])
        assert "the same file" in msg


@pytest.mark.root
def test_offset_loop_over_source_file_is_refused(tmp_path: Path) -> None:
    """A partition-like window (losetup -o) of the source image is still the source."""
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 16 * MiB)
    with loop(src) as whole, loop(src, offset=8 * MiB, size=8 * MiB) as part:
        refused(part, sources=[whole])
        refused(whole, sources=[part])


@pytest.mark.root
def test_target_file_stored_on_the_source_device_is_refused(tmp_path: Path) -> None:
    """Cloning /dev/X into a file on a filesystem of /dev/X would rewrite the source while reading it."""
    need_root_tools("losetup", "mkntfs", "ntfs-3g")
    src = make_file(tmp_path / "src.img", 16 * MiB)
    with loop(src) as dev, ntfs_mounted(dev, tmp_path / "m") as mnt:
        inner = make_file(mnt / "clone.img", 4 * MiB)
        msg = refused(str(inner), sources=[dev])
        assert "stored on source" in msg


@pytest.mark.root
def test_loop_target_over_unrelated_file_is_accepted(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    dst = make_file(tmp_path / "dst.img", 8 * MiB)
    with loop(dst) as dev:
        with open_target(dev, sources=[str(src)], required_size=8 * MiB, sector_size=512) as disk:
            assert disk.kind == "block" and disk.size == 8 * MiB
            assert disk.backing_file == str(dst)


# --- target in use ----------------------------------------------------------------------------------


@pytest.mark.root
def test_mounted_target_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup", "mkntfs", "ntfs-3g")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 16 * MiB)
    # A space in the mount point: mountinfo escapes it as \040, the message must show the real path.
    with loop(tgt) as dev, ntfs_mounted(dev, tmp_path / "mount point") as mnt:
        msg = refused(dev, sources=[str(src)])
        assert "mounted at" in msg and str(mnt) in msg
        # The image file behind the mounted loop device is in use as well.
        msg = refused(str(tgt), sources=[str(src)])
        assert "mounted at" in msg


@pytest.mark.root
def test_exclusively_opened_target_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 8 * MiB)
    with loop(tgt) as dev:
        holder = os.open(dev, os.O_RDONLY | os.O_EXCL)
        try:
            msg = refused(dev, sources=[str(src)])
            assert "in use" in msg
        finally:
            os.close(holder)
        # Once released, the same device is accepted: the refusal was the exclusive open.
        with open_target(dev, sources=[str(src)], required_size=8 * MiB, sector_size=512) as disk:
            assert disk.size == 8 * MiB


@pytest.mark.root
def test_image_folder_on_the_target_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup", "mkntfs", "ntfs-3g")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 16 * MiB)
    with loop(tgt) as dev, ntfs_mounted(dev, tmp_path / "m") as mnt:
        (mnt / "backups").mkdir()
        image = mnt / "backups" / "disk0.img"
        image.write_bytes(b"x" * 4096)
        msg = refused(dev, sources=[str(src)], images=[str(image)])
        assert "the image" in msg and str(image) in msg
        # A folder that does not exist yet is judged by where it would be created.
        msg = refused(dev, sources=[str(src)], images=[str(mnt / "new" / "set")])
        assert "the image" in msg


# --- unfit targets: numbers in the message ---------------------------------------------------


@pytest.mark.root
def test_read_only_loop_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 8 * MiB)
    with loop(tgt, readonly=True) as dev:
        assert "read-only" in refused(dev, sources=[str(src)])


def test_read_only_file_on_read_only_mount_is_refused(tmp_path: Path) -> None:
    """A file target that cannot be opened for writing (chmod is no barrier for root: use a ro bind)."""
    if os.geteuid() != 0:
        src = make_file(tmp_path / "src.img", 8 * MiB)
        tgt = make_file(tmp_path / "tgt.img", 8 * MiB)
        tgt.chmod(0o444)
        assert "read-only" in refused(str(tgt), sources=[str(src)])
        return
    src = make_file(tmp_path / "src.img", 8 * MiB)
    inner = tmp_path / "d"
    inner.mkdir()
    make_file(inner / "tgt.img", 8 * MiB)
    ro = tmp_path / "ro"
    ro.mkdir()
    _run(["mount", "--bind", "-o", "ro", str(inner), str(ro)])
    try:
        assert "read-only" in refused(str(ro / "tgt.img"), sources=[str(src)])
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_read_only_mode_file_is_refused_even_for_root(tmp_path: Path) -> None:
    """Mode 444 says nobody may write the file: refused, as root too (root's writes ignore the mode)."""
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 8 * MiB)
    tgt.chmod(0o444)
    assert "read-only (mode 444)" in refused(str(tgt), sources=[str(src)])


@pytest.mark.root
def test_too_small_loop_is_refused_with_numbers(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 4 * MiB)
    with loop(tgt) as dev:
        msg = refused(dev, sources=[str(src)], required=4 * MiB + 512)
        assert str(4 * MiB) in msg and str(4 * MiB + 512) in msg and "smaller" in msg


def test_too_small_file_is_refused_with_numbers(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 3 * MiB)
    msg = refused(str(tgt), sources=[str(src)], required=8 * MiB)
    assert str(3 * MiB) in msg and str(8 * MiB) in msg


@pytest.mark.root
def test_sector_size_mismatch_is_refused(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 8 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 8 * MiB)
    try:
        ctx = loop(tgt, sector_size=4096)
        dev = ctx.__enter__()
    except RuntimeError as e:
        pytest.skip(f"kernel/losetup lacks --sector-size: {e}")
    try:
        msg = refused(dev, sources=[str(src)], sector=512)
        assert "4096" in msg and "512" in msg
        with open_target(dev, sources=[str(src)], required_size=8 * MiB, sector_size=4096) as disk:
            assert disk.logical_sector_size == 4096
    finally:
        ctx.__exit__(None, None, None)


def test_missing_target_is_refused_unless_created(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    new = tmp_path / "new.img"
    assert "does not exist" in refused(str(new), sources=[str(src)])
    assert not new.exists()
    with open_target(str(new), sources=[str(src)], required_size=8 * MiB, sector_size=512,
                     allow_create=True) as disk:
        assert disk.size == 8 * MiB
    assert new.stat().st_size == 8 * MiB
    assert new.stat().st_blocks == 0  # created sparse, nothing written yet


def test_created_target_is_removed_when_refused(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", 8 * MiB)
    new = tmp_path / "new.img"
    # 4 EiB is beyond any filesystem's file size limit: sizing the new file fails (EFBIG).
    with pytest.raises(TargetRefused) as info:
        open_target(str(new), sources=[str(src)], required_size=1 << 62, sector_size=512, allow_create=True)
    assert str(new) in str(info.value)
    assert not new.exists()
