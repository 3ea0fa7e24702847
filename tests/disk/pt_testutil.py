"""Helpers shared by the partition-table tests: disk image files, sfdisk/sgdisk views of them.

Not a conftest (other engineers own fixtures in tests/disk); imported by test_mbr, test_gpt,
test_partitions and test_partitions_fuzz.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from core.partition.model import PartitionTable
from core.partition.detect import read_partition_table
from core.io.reader import FdReader
from tests.disk.loops import loop

MiB = 1 << 20


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")


@contextmanager
def tool_view(path: Path, sector_size: int) -> Iterator[str]:
    """What to hand sfdisk/sgdisk: the file itself, or a loop device showing ``sector_size`` sectors.

    sfdisk 2.38 has no --sector-size and sgdisk none at all, so 4Kn disks are presented by the kernel.
    """
    if sector_size == 512:
        yield str(path)
        return
    if os.geteuid() != 0:
        pytest.skip("4096-byte logical sectors need a loop device (root): the tools have no "
                    "sector-size option for files")
    need("losetup")
    with loop(path, sector_size=sector_size) as dev:
        yield dev


def make_disk(path: Path, size: int, script: str, sector_size: int = 512) -> Path:
    need("sfdisk")
    with open(path, "wb") as f:
        f.truncate(size)
    with tool_view(path, sector_size) as target:
        subprocess.run(["sfdisk", "-q", target], input=script.encode(), check=True, capture_output=True)
    return path


def run_tool(path: Path, sector_size: int, *args: str) -> str:
    """Run a tool with the disk as last argument; its stdout (exit status not checked)."""
    with tool_view(path, sector_size) as target:
        return subprocess.run([*args, target], capture_output=True, text=True).stdout


def normalise(text: str) -> list[str]:
    """Dump lines with the device name (file or loop device) replaced by P<number>."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("device:")]
    return [re.sub(r"^\S+?(\d+) :", r"P\1 :", ln) for ln in lines]


def sfdisk_json(path: Path, sector_size: int = 512) -> dict:
    return json.loads(run_tool(path, sector_size, "sfdisk", "--json"))["partitiontable"]


def sfdisk_dump(path: Path, sector_size: int = 512) -> list[str]:
    return normalise(run_tool(path, sector_size, "sfdisk", "--dump"))


def sfdisk_verify(path: Path, sector_size: int = 512) -> str:
    return run_tool(path, sector_size, "sfdisk", "--verify")


def node_number(node: str) -> int:
    m = re.search(r"(\d+)$", node)
    assert m is not None, node
    return int(m.group(1))


def parse_file(path: Path, sector_size: int = 512) -> PartitionTable:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_partition_table(FdReader(fd, os.fstat(fd).st_size, str(path)), sector_size)
    finally:
        os.close(fd)


def apply(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes:
            f.seek(off)
            f.write(data)
    return path
