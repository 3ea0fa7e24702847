"""Which disk a session client takes (`core.multicast.pick`): the rule among the candidates, then what
the disk holds. Guards R-71.

The candidates are `DiskSummary` rows as `list_disks` makes them; the disks whose contents are judged
are real files with real signatures (sfdisk, mkfs.vfat), read by `blkid` and our partition-table parser.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from core.disk.discover import DiskSummary
from core.errors import TargetRefused, UsageError
from core.multicast.pick import check_rule, choose, holds

MiB = 1 << 20


def disk(name: str, size: int, model: str) -> DiskSummary:
    return DiskSummary(name=name, model=model, serial="", bus="sata", size=size, logical_sector_size=512,
                       physical_sector_size=512, removable=False, read_only=False)


ROOM = [disk("/dev/sda", 500 * MiB, "Samsung SSD 870"), disk("/dev/sdb", 2000 * MiB, "WDC WD20EZRZ"),
        disk("/dev/sdc", 256 * MiB, "Samsung SSD 860")]


def test_rules() -> None:
    assert choose("largest", ROOM).name == "/dev/sdb"
    assert choose("model=wdc", ROOM).name == "/dev/sdb"  # case does not matter
    assert choose("only", ROOM[:1]).name == "/dev/sda"
    with pytest.raises(TargetRefused, match="exactly one disk, found: /dev/sda .*, /dev/sdc"):
        choose("model=Samsung", ROOM)  # two match: a rule never guesses between them
    with pytest.raises(TargetRefused, match="exactly one disk"):
        choose("only", ROOM)
    with pytest.raises(TargetRefused, match="no disk"):
        choose("largest", [])
    for bad in ("biggest", "model=", ""):
        with pytest.raises(UsageError):
            check_rule(bad)


def test_what_a_disk_holds(tmp_path: Path) -> None:
    if shutil.which("sfdisk") is None or shutil.which("mkfs.vfat") is None or shutil.which("blkid") is None:
        pytest.fail("sfdisk, mkfs.vfat and blkid are needed: scripts/setup.sh installs them")
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(8 * MiB))
    assert holds(str(blank), "0x1234abcd") == "blank"
    ours = tmp_path / "ours.img"
    ours.write_bytes(bytes(8 * MiB))
    subprocess.run(["sfdisk", "-q", str(ours)], input=b"label: dos\nlabel-id: 0x1234abcd\nstart=2048, type=7\n",
                   check=True)
    assert holds(str(ours), "0x1234abcd") == "this image's partition table"
    assert holds(str(ours), "0x0badcafe").startswith("another partition table (mbr, disk id 0x1234abcd")
    data = tmp_path / "data.img"
    data.write_bytes(bytes(8 * MiB))
    subprocess.run(["mkfs.vfat", str(data)], check=True, capture_output=True)
    # a filesystem on the whole disk (its boot sector ends in 0x55AA too, but holds no partition table)
    assert holds(str(data), "0x1234abcd") == "data (vfat)"
