"""`core.platform` against the real machine: tools, a loop device, a mount in mountinfo, a zombie."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import platform
from core.errors import TargetWriteError, UnsupportedError
from tests.conftest import need_root_tools

MiB = 1 << 20


def _write_error(detail: str) -> TargetWriteError:
    return TargetWriteError(target="t", detail=detail)


def test_run_returns_stdout_and_maps_a_failure_to_our_error_with_the_last_stderr_line() -> None:
    assert platform.run(["sh", "-c", "echo out"], "echoing", error=_write_error) == "out\n"
    with pytest.raises(TargetWriteError) as e:
        platform.run(["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"], "testing", error=_write_error)
    assert e.value.message == "Writing to target t failed: testing: sh exited 3: the reason"


def test_run_times_out_and_reports_a_missing_tool_as_unsupported() -> None:
    t0 = time.monotonic()
    with pytest.raises(TargetWriteError, match="sleep did not finish within 0.3 s"):
        platform.run(["sleep", "30"], "waiting", error=_write_error, timeout=0.3)
    assert time.monotonic() - t0 < 10
    with pytest.raises(UnsupportedError, match="no-such-tool-here is not installed"):
        platform.run(["no-such-tool-here"], "testing", error=_write_error)


def test_run_closes_stdin_so_a_prompt_cannot_hang() -> None:
    # `read` gets end-of-file at once instead of waiting for a terminal.
    assert platform.run(["sh", "-c", "read x || echo eof"], "prompting", error=_write_error) == "eof\n"
    assert platform.run(["sh", "-c", "read x; echo $x"], "answering", error=_write_error, input="y\n") == "y\n"


@pytest.mark.root
def test_loop_device_is_attached_over_a_byte_range_and_detached(tmp_path: Path) -> None:
    need_root_tools("losetup")
    img = tmp_path / "disk.img"
    img.write_bytes(b"A" * MiB + b"B" * MiB + b"C" * MiB)
    with platform.loop_device(str(img), offset=MiB, size=MiB, readonly=True, error=_write_error) as dev:
        assert platform.loops_backed_by(str(tmp_path)) == [dev]
        with open(dev, "rb") as f:
            assert f.read() == b"B" * MiB
        assert Path(f"/sys/block/{os.path.basename(dev)}/ro").read_text().strip() == "1"  # as asked
    assert platform.loops_backed_by(str(tmp_path)) == []
    assert not os.path.exists(f"/sys/block/{os.path.basename(dev)}/loop/backing_file")


@pytest.mark.root
def test_loop_device_is_detached_when_the_body_fails(tmp_path: Path) -> None:
    need_root_tools("losetup")
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(MiB))
    with pytest.raises(RuntimeError, match="body"):
        with platform.loop_device(str(img), error=_write_error):
            raise RuntimeError("body")
    assert platform.loops_backed_by(str(tmp_path)) == []


@pytest.mark.root
def test_a_real_mount_with_a_space_is_seen_in_mountinfo_and_unmounted(tmp_path: Path) -> None:
    need_root_tools("mount", "umount")
    mnt = tmp_path / "mount point"  # mountinfo escapes the space as \040
    mnt.mkdir()
    platform.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rescue-test", str(mnt)], "mounting", error=_write_error)
    try:
        found = [m for m in platform.mounts() if m.mount_point == str(mnt)]
        assert len(found) == 1 and found[0].fs_type == "tmpfs" and found[0].source == "rescue-test"
        assert found[0].dev == os.stat(mnt).st_dev
        assert platform.is_mounted(str(mnt) + "/")
        busy = os.open(mnt, os.O_RDONLY)  # an open directory keeps it busy
        back = os.getcwd()  # later tests run programs from the working folder: it must come back
        try:
            os.fchdir(busy)
            assert "busy" in platform.unmount(str(mnt), lazy=False, tries=2)
        finally:
            os.chdir(back)
            os.close(busy)
        assert platform.unmount(str(mnt), lazy=False) == ""
        assert not platform.is_mounted(str(mnt))
    finally:
        platform.attempt(["umount", "-l", str(mnt)])


def _state(pid: int) -> bytes:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[-1].split()[0]


def test_a_zombie_is_dead_a_running_process_alive() -> None:
    assert platform.pid_alive(os.getpid())
    for bad in (None, "123", 0, -1, True, 2**40):
        assert not platform.pid_alive(bad)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while _state(child.pid) != b"Z":  # exited, not reaped: we never called wait()
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not platform.pid_alive(child.pid)
    finally:
        child.wait()
    assert not platform.pid_alive(child.pid)  # reaped: gone for good
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert platform.pid_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_ram_folders_are_told_apart_from_disk_ones_overlays_by_their_upper_layer(tmp_path: Path) -> None:
    """A folder on tmpfs, or on an overlay whose writable layer is tmpfs (a live system's root), is in RAM;
    an overlay whose upper layer is on disk, and a disk folder, are not."""
    from core.platform.ramfs import ram_filesystem
    need_root_tools("mount", "umount")
    ram, disk_upper = tmp_path / "ram", tmp_path / "disk-upper"
    low, merged, merged2 = tmp_path / "low", tmp_path / "merged", tmp_path / "merged2"
    for d in (ram, disk_upper / "u", disk_upper / "w", low, merged, merged2):
        d.mkdir(parents=True)
    platform.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rescue-test", str(ram)], "mounting", error=_write_error)
    try:
        (ram / "u").mkdir()
        (ram / "w").mkdir()
        for m, up in ((merged, ram), (merged2, disk_upper)):
            platform.run(["mount", "-t", "overlay", "overlay", "-o",
                          f"lowerdir={low},upperdir={up / 'u'},workdir={up / 'w'}", str(m)], "mounting overlay",
                         error=_write_error)
        assert ram_filesystem(str(ram / "not" / "yet")) == "tmpfs"
        assert ram_filesystem(str(merged / "pc1")) == "overlay on tmpfs"
        assert ram_filesystem(str(merged2 / "pc1")) is None
        assert ram_filesystem(str(tmp_path)) is None
    finally:
        for m in (merged, merged2, ram):
            platform.attempt(["umount", "-l", str(m)])
