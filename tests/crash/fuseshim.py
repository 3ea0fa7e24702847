"""Mount one of the FUSE shims of this folder (eio_fuse.py, liar_fuse.py) for a test, and clean up.

Both serve one file, ``disk.img``, and print ``ready`` once mounted. `mounted_shim` yields its path
and always unmounts, even when the test fails; it skips only where the kernel has no FUSE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import need_root_tools


def need_fuse() -> None:
    """Fail without pyfuse3 (setup installs it); skip only where the kernel has no FUSE."""
    need_root_tools("fusermount3")
    try:
        import pyfuse3  # noqa: F401
        import trio  # noqa: F401
    except ImportError as e:
        pytest.fail(f"pyfuse3/trio missing ({e}): scripts/setup.sh installs them")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse: the kernel has no FUSE here")


@contextmanager
def mounted_shim(script: Path, args: list[str], mnt: Path) -> Iterator[Path]:
    need_fuse()
    mnt.mkdir(exist_ok=True)
    # Each shim takes: its image, the mount point, then its own arguments.
    proc = subprocess.Popen([sys.executable, str(script), args[0], str(mnt), *args[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            proc.wait(timeout=10)
            err = proc.stderr.read() if proc.stderr else ""
            pytest.skip(f"pyfuse3 cannot mount here: {err.strip()[-300:] or line}")
        deadline = time.monotonic() + 10
        while not (mnt / "disk.img").exists():
            assert time.monotonic() < deadline, "FUSE mount did not show disk.img"
            time.sleep(0.01)
        yield mnt / "disk.img"
    finally:
        unmount(mnt, proc, 10)


def unmount(mnt: Path, proc: subprocess.Popen[str], timeout: float) -> None:
    """Unmount a shim and wait for its server; a server that hangs is killed and the mount detached."""
    # Unconditionally: a dead filesystem answers stat() with EIO, so ismount() would say it is not one.
    subprocess.run(["fusermount3", "-u", str(mnt)], check=False, capture_output=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
    assert not os.path.ismount(mnt)
