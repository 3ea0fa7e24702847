"""`rescue-build winpe --usb` on a loop device: an MBR with one active FAT32 partition whose files mtools
lists (the kernel here has no vfat: nothing is mounted), BIOS boot code from syslinux; the confirmation
as `rescue restore` asks it; and the disk the build runs from refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from builder import winpe_usb
from builder.errors import BuildError
from core.disk import sysblock
from tests.conftest import need_root_tools
from tests.disk.loops import loop
from tests.winpe import synthetic
from tests.winpe.conftest import Base, rescue_cli

pytestmark = pytest.mark.root
MiB = 1 << 20


def _usb(base: Base, rescue: Path, dev: str, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return rescue_cli("winpe", "--adk-media", str(base.copype), "--rescue-dir", str(rescue), "--usb", dev,
                      "--work", str(work), *extra)


def _mtools(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True,
                          env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout


def test_usb_stick_is_mbr_with_one_active_fat32_partition(winpe_base: Base, rescue_folder: Path,
                                                          tmp_path: Path) -> None:
    need_root_tools("losetup", "sfdisk")
    stick = tmp_path / "stick.img"
    old = bytes(range(256)) * (MiB // 256)  # a used stick: what the build does not write must not matter
    with open(stick, "wb") as f:
        for _ in range(128):
            f.write(old)
    with loop(stick) as dev:
        refused = _usb(winpe_base, rescue_folder, dev, tmp_path / "w")  # no --yes, no terminal
        assert refused.returncode == 3, refused.stderr
        assert "without confirmation: pass --yes" in refused.stderr
        assert "Write the WinPE rescue medium onto " + dev in refused.stderr  # the plan came first
        assert stick.read_bytes() == old * 128  # nothing written
        proc = _usb(winpe_base, rescue_folder, dev, tmp_path / "w", "--yes")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        table = json.loads(subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True,
                                          check=True).stdout)["partitiontable"]
    assert table["label"] == "dos"
    [part] = table["partitions"]
    assert part["start"] == 2048 and part["type"] == "c" and part.get("bootable") is True
    assert part["start"] + part["size"] == 128 * MiB // 512
    image = f"{stick}@@{MiB}"
    part_file = tmp_path / "part.img"  # the partition alone, for fsck (it takes no offset)
    with open(stick, "rb") as src, open(part_file, "wb") as dst:
        src.seek(MiB)
        dst.write(src.read())
    fsck = subprocess.run(["fsck.vfat", "-n", str(part_file)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    info = _mtools("minfo", "-i", image, "::")
    assert 'disk type="FAT32   "' in info and "hidden sectors: 2048" in info
    listing = _mtools("mdir", "-/", "-a", "-b", "-i", image, "::/")  # -a: ldlinux.sys is hidden
    for want in ("::/bootmgr", "::/bootmgr.efi", "::/Boot/BCD", "::/EFI/Boot/bootx64.efi", "::/sources/boot.wim",
                 "::/rescue-pe.id", "::/rescue-pe.manifest.json", "::/syslinux/ldlinux.sys",
                 "::/syslinux/chain.c32", "::/syslinux/syslinux.cfg"):
        assert want in listing.splitlines(), (want, listing)
    _mtools("mcopy", "-i", image, "::/sources/boot.wim", str(tmp_path / "boot.wim"))
    assert "/rescue/rescue.exe" in synthetic.run("wimdir", str(tmp_path / "boot.wim"), "1").splitlines()
    with open(stick, "rb") as f:
        mbr = f.read(512)
    assert mbr[:440] == winpe_usb.SYSLINUX_MBR.read_bytes()[:440] and mbr[510:] == b"\x55\xaa"
    assert synthetic.tree_hashes(winpe_base.copype) == winpe_base.hashes


def _root_disk() -> str | None:
    """The whole disk holding "/", when it is on a block device (not an overlay or tmpfs)."""
    dev = os.stat("/").st_dev
    if not sysblock.is_block_device(dev):
        return None
    return sysblock.node(sysblock.whole_disk(dev))


def test_usb_refuses_the_disk_the_build_runs_from(winpe_base: Base, rescue_folder: Path, tmp_path: Path) -> None:
    """The disk under "/" (when "/" is on one), and a disk holding the build's work folder: refused with
    the restore's message and exit code (40) before the build, nothing written."""
    need_root_tools("losetup", "mkfs.ext4", "mount")
    root = _root_disk()
    if root is not None:  # (reading it back is not allowed in this container: the refusal is before any open)
        proc = _usb(winpe_base, rescue_folder, root, tmp_path / "w", "--yes")
        assert proc.returncode == 40, proc.stderr
        assert proc.stderr.startswith(f"rescue-build: error: Refusing target {root}: source / is stored on it")
        assert "making the FAT32" not in proc.stderr and "base " not in proc.stdout  # before the build
    img = tmp_path / "work.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop(img) as dev:
        subprocess.run(["mount", dev, str(mnt)], check=True, capture_output=True)
        try:
            proc = _usb(winpe_base, rescue_folder, dev, mnt / "work", "--yes")
        finally:
            subprocess.run(["umount", str(mnt)], check=True, capture_output=True)
    assert proc.returncode == 40, proc.stderr
    assert f"Refusing target {dev}: " in proc.stderr and "work" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_boot_wim_of_4_gib_does_not_fit_fat32(tmp_path: Path) -> None:
    wim = tmp_path / "boot.wim"
    with open(wim, "wb") as f:
        f.truncate(4 << 30)  # sparse
    with pytest.raises(BuildError) as e:
        winpe_usb.check_fat32({"sources/boot.wim": wim})
    assert "sources/boot.wim is 4.00 GiB: a FAT32 file must be under 4 GiB" in e.value.message
    with open(wim, "wb") as f:
        f.truncate((4 << 30) - 1)
    assert winpe_usb.check_fat32({"sources/boot.wim": wim}) == (4 << 30) - 1
