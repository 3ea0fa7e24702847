"""list_disks(): a loop device with a backing file is found, with the sizes the kernel reports."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.disk.discover import describe, list_disks
from tests.conftest import need_root_tools
from tests.disk.loops import loop

MiB = 1 << 20


@pytest.mark.root
def test_list_disks_finds_attached_loop_device(tmp_path: Path) -> None:
    need_root_tools("losetup", "blockdev", "sfdisk", "mkntfs")
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(24 * MiB)
    subprocess.run(["sfdisk", "-q", str(img)], input="label: dos\n,8M,7\n", text=True, check=True)
    with loop(img, offset=MiB, size=8 * MiB) as part:
        subprocess.run(["mkntfs", "-Fq", "-L", "WinData", part], capture_output=True, check=True)
    with loop(img) as dev:
        found = [d for d in list_disks() if d.name == dev]
        assert len(found) == 1, f"{dev} not listed"
        d = found[0]
        assert d.size == int(subprocess.check_output(["blockdev", "--getsize64", dev])) == 24 * MiB
        assert d.logical_sector_size == 512
        assert d.backing_file == str(img)
        assert not d.read_only and d.busy == []
        assert d.table == "mbr", d.table
        assert [(p.number, p.start, p.size) for p in d.partitions] == [(1, MiB, 8 * MiB)]
        assert (d.partitions[0].fs, d.partitions[0].label) == ("ntfs", "WinData")
        assert describe(d) == f"{dev} (Loop device, file {img}, 25.2 MB)"
    assert all(d.name != dev for d in list_disks(probe=False)), "detached loop device still listed"


@pytest.mark.root
def test_list_disks_skips_unattached_loops_and_ram_disks() -> None:
    need_root_tools("losetup")
    for d in list_disks(probe=False):
        name = os.path.basename(d.name)
        assert not name.startswith(("ram", "zram"))
        assert d.size > 0
        if name.startswith("loop"):
            assert d.backing_file
