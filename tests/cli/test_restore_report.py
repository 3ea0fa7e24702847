"""The end of a restore says what boot repair did, and whether the restored Windows can start the way
this machine started (BIOS or UEFI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.platform.firmware import boot_mode_note, booted_firmware
from tests.conftest import need_root_tools
from tests.images import run_rescue
from tests.repair.repair_helpers import clean_system_hive, disk_copy

MiB = 1 << 20


def test_boot_mode_note_follows_how_the_machine_started(tmp_path: Path) -> None:
    uefi, bios = tmp_path / "uefi", tmp_path / "bios"
    (uefi / "firmware" / "efi").mkdir(parents=True)
    (bios / "firmware").mkdir(parents=True)
    assert booted_firmware(str(uefi)) == "uefi" and booted_firmware(str(bios)) == "bios"
    assert "legacy/CSM" in (boot_mode_note("mbr", str(uefi)) or "")
    assert "UEFI boot" in (boot_mode_note("gpt", str(bios)) or "")
    assert boot_mode_note("mbr", str(bios)) is None and boot_mode_note("gpt", str(uefi)) is None
    assert boot_mode_note("none", str(uefi)) is None


@pytest.mark.parametrize("kind", ["mbr-small", "gpt-small"])
def test_restore_ends_with_what_boot_repair_did(kind: str, tmp_path: Path) -> None:
    need_root_tools("ntfs-3g", "ntfsresize")
    info = disk_copy(kind, tmp_path / "src.img", size=700 * MiB, hiberfil_magic=b"wake")
    clean_system_hive(info.path, info.part("windows"))
    r = run_rescue("backup", str(info.path), str(tmp_path / "bk"))
    assert r.returncode in (0, 101), r.stderr
    target = tmp_path / "t.img"
    target.write_bytes(b"")
    os.truncate(target, int(info.size * 1.5))
    r = run_rescue("restore", str(tmp_path / "bk"), str(target), "--yes")
    assert r.returncode in (0, 102), r.stderr
    lines = r.stderr.splitlines()
    done = lines.index("done:")
    plan = [line for line in lines[:done] if line.startswith("  ")]  # the table and notes, not the paths
    assert len(plan) > 4 and all(len(line) <= 80 for line in plan), r.stderr
    repair = [line for line in lines[done:] if line.startswith("  boot repair: ")]
    assert repair, r.stderr  # the Windows partition moved (a larger disk): the repair's changes, or "nothing"
    scheme = kind.split("-")[0]
    note = boot_mode_note(scheme)
    needs = {"mbr": "bios", "gpt": "uefi"}[scheme]
    assert (note is None) == (needs == booted_firmware()), note
    if note:
        assert f"rescue: note: {note}" in lines, r.stderr
    else:
        assert "legacy/CSM" not in r.stderr and "UEFI boot" not in r.stderr
