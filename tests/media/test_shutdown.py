"""The media's poweroff/reboot/halt (linux-live/shutdown) unmount what the user mounted before the power
goes: here its unmount step alone (`--unmount-only DIR`, which stops no program and switches nothing
off), on real ext4 filesystems on loop devices below a test folder. The whole shutdown, in a VM, is
tests/media/test_boot.py's guide test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_root_tools

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN = ROOT / "linux-live" / "shutdown"
pytestmark = pytest.mark.root
MiB = 1 << 20


def ext4(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", str(path)], check=True)
    return path


def mounted(below: Path) -> dict[str, str]:
    """Mount point -> options, of the mounts at or below ``below``."""
    out = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        point, options = line.split()[1], line.split()[3]
        point = point.replace("\\040", " ")
        if point == str(below) or point.startswith(f"{below}/"):
            out[point] = options
    return out


def loops_backed_by(below: Path) -> list[str]:
    out = subprocess.run(["losetup", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if f" {below}/" in f" {line.split(None, 1)[-1]}"]


def test_unmounts_nested_mounts_detaches_loops_and_makes_busy_ones_read_only(tmp_path: Path) -> None:
    need_root_tools("mke2fs", "losetup", "mount", "umount")
    top = tmp_path / "mnt"
    outer, inner, busy = top / "backup disk", top / "backup disk" / "image", top / "busy"
    for d in (outer, busy):
        d.mkdir(parents=True)
    sleeper = None
    try:
        # a backup disk (a name with a blank, as /proc/mounts escapes it) ...
        subprocess.run(["mount", "-o", "loop", str(ext4(tmp_path / "outer.img", 64 * MiB)), str(outer)],
                       check=True)
        # ... holding an image file attached by losetup (as the engine attaches partitions) and mounted
        image = ext4(outer / "inner.img", 16 * MiB)
        dev = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                             check=True).stdout.strip()
        inner.mkdir()
        subprocess.run(["mount", dev, str(inner)], check=True)
        (inner / "file").write_text("kept")
        # ... and a disk a program still works in: it cannot be unmounted, only made read-only
        subprocess.run(["mount", "-o", "loop", str(ext4(tmp_path / "busy.img", 16 * MiB)), str(busy)],
                       check=True)
        sleeper = subprocess.Popen(["sleep", "600"], cwd=busy)
        assert set(mounted(top)) == {str(outer), str(inner), str(busy)}

        r = subprocess.run(["sh", str(SHUTDOWN), "--unmount-only", str(top)], capture_output=True, text=True,
                           timeout=120, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert mounted(top) == {str(busy): mounted(top)[str(busy)]}
        assert mounted(top)[str(busy)].split(",")[0] == "ro"
        assert f"{busy} is still in use: made read-only" in r.stdout
        assert loops_backed_by(outer) == []  # the image's loop device detached, so its disk could go
        # the image was unmounted cleanly: mounted again, its file is there
        subprocess.run(["mount", "-o", "loop,ro", str(tmp_path / "outer.img"), str(outer)], check=True)
        assert subprocess.run(["debugfs", "-R", "cat /file", str(outer / "inner.img")], capture_output=True,
                              text=True, check=True).stdout == "kept"
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for point in sorted(mounted(top), reverse=True):
            subprocess.run(["umount", point], check=False)
        for loop_dev in loops_backed_by(tmp_path):
            subprocess.run(["losetup", "-d", loop_dev], check=False)
