"""rescue-build without booting anything: a missing host tool stops the build naming the Debian package,
and the list files of linux-live/ are well-formed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder import host, kmods, rootfs
from builder.errors import MissingTool

ROOT = Path(__file__).resolve().parents[2]


def test_missing_tool_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_EXTRA_PATH", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingTool) as e:
        host.require("xorriso")
    assert "xorriso is missing" in e.value.message and "apt-get install xorriso" in e.value.message
    with pytest.raises(MissingTool) as e:
        host.require("depmod")
    assert "kmod" in e.value.message


def test_missing_tool_from_tools_list_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_EXTRA_PATH", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingTool) as e:
        rootfs.install_tools(tmp_path, [("ntfs-3g", "ntfs-3g")])
    assert "apt-get install ntfs-3g" in e.value.message


def test_cli_reports_missing_tool_in_one_line(tmp_path: Path) -> None:
    """The whole command as a user runs it, on a host without the ISO tools (PATH emptied)."""
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", "from builder.cli import main; main()", "linux-live",
                           "--work", str(tmp_path / "w"), "--out", str(tmp_path / "x.iso")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rescue-build: error: xorriso is missing: install the Debian package xorriso")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.iso").exists()


def test_lists_are_well_formed() -> None:
    tools = rootfs.read_tools(ROOT / "linux-live" / "tools.list")
    assert ("ntfs-3g", "ntfs-3g") in tools and ("sgdisk", "gdisk") in tools
    mods = kmods.read_list(ROOT / "linux-live" / "modules.list")
    for needed in ("ahci", "nvme", "usb_storage", "uas", "virtio_blk", "virtio_scsi", "virtio_pci", "loop",
                   "fuse", "xhci_pci"):
        assert needed in mods
    assert len(mods) == len(set(mods))


def test_boot_menus_offer_shell_only_beside_the_default() -> None:
    """BIOS (ISOLINUX) and UEFI (GRUB) menus: the default entry starts the guide, the next one is the
    same kernel command line plus rescue.shell (the init then starts a shell instead)."""
    from builder.iso import render

    values = {"timeout": "10", "append": "quiet rescue.medium=x", "version": "1"}
    bios = render(ROOT / "linux-live" / "isolinux.cfg", **values)
    appends = [line.strip() for line in bios.splitlines() if line.strip().startswith("APPEND")]
    assert appends[:2] == ["APPEND quiet rescue.medium=x", "APPEND quiet rescue.medium=x rescue.shell"]
    assert "MENU LABEL Rescue console, s^hell only (no guide)" in bios  # ^h: its key in the menu
    uefi = render(ROOT / "linux-live" / "grub.cfg", **values)
    linux = [line.strip() for line in uefi.splitlines() if line.strip().startswith("linux ")]
    assert linux[:2] == ["linux /live/vmlinuz quiet rescue.medium=x",
                         "linux /live/vmlinuz quiet rescue.medium=x rescue.shell"]
    assert 'menuentry "Rescue console, shell only (no guide)"' in uefi
