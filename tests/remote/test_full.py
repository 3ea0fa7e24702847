"""Issue 16: a backup folder on the network that fills up.

The server's own filesystem runs out of space in the middle of a backup (SFTP: sshd serving a folder on
a small ext4 file system; S3: SeaweedFS storing its volumes on one). The backup says so in one line —
not "connection lost", not a bare "Input/output error", not a traceback — with the folder-full exit code
(10) where the server's answer tells it (SFTP: the folder's free space; an S3 store that names it), the
store's own words otherwise; the partial image is never listed complete, the earlier image stays intact
(it verifies), and on SFTP, where the removed partial image frees its space, the next backup works.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import need_root_tools
from tests.crash.crashlib import one_error_line
from tests.remote.servers import Sshd
from tests.remote.test_remote import Backend, only_earlier_complete, random_disk

pytestmark = [pytest.mark.root, pytest.mark.slow]


def small_ext4(path: Path, mib: int) -> Path:
    """A ``mib`` MiB ext4 file system mounted at ``path`` (through a loop device)."""
    path.mkdir(parents=True)
    img = path.with_suffix(".ext4")
    subprocess.run(["truncate", "-s", f"{mib}M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(path)], check=True)
    return path


def fill(b: Backend, url: str, tmp_path: Path, big_mib: int) -> tuple[str, str, int]:
    """A first backup that fits, then one of ``big_mib`` MiB of random data that cannot: the first's
    id, the second's one error line and exit code; the first is then the only complete image."""
    first = random_disk(tmp_path / "first.img", 12, 5)
    r = b.rescue("backup", str(first), url, "--split", "8M", "--json", *b.opts())
    assert r.returncode == 0, r.stderr
    earlier = json.loads(r.stdout)["id"]
    big = random_disk(tmp_path / "big.img", big_mib, 6)  # random: does not compress
    r = b.rescue("backup", str(big), url, "--split", "8M", *b.opts())
    line = one_error_line(r.stderr)
    assert url in line, line
    only_earlier_complete(b, url, earlier)
    return str(first), line, r.returncode


@pytest.fixture
def full_sftp(tmp_path: Path) -> Iterator[tuple[Backend, str]]:
    need_root_tools("ip", "nsenter", "sshfs", "fusermount3", "/usr/sbin/sshd", "mkfs.ext4")
    # mounted before sshd starts: sshd runs in a mount namespace of its own, a copy taken at its start
    small = small_ext4(tmp_path / "small", 48)
    (tmp_path / "b").mkdir()
    b = Backend("sftp", tmp_path / "b")
    try:
        yield b, f"sftp://root@127.0.0.1:{Sshd.PORT}{small}/pc"
    finally:
        b.close()
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_sftp_share_full(full_sftp: tuple[Backend, str], tmp_path: Path) -> None:
    b, url = full_sftp
    first, line, code = fill(b, url, tmp_path, 64)
    assert code == 10 and "No space left" in line, (code, line)
    r = b.rescue("backup", first, url, "--split", "8M", *b.opts())
    assert r.returncode == 0, r.stderr


@pytest.fixture
def full_s3(tmp_path: Path) -> Iterator[tuple[Backend, str]]:
    need_root_tools("ip", "nsenter", "rclone", "fusermount3", "mkfs.ext4")
    data = small_ext4(tmp_path / "b" / "weed" / "data", 96)  # SeaweedFS keeps its volumes here
    try:
        b = Backend("s3", tmp_path / "b")
        try:
            yield b, b.url("pc")
        finally:
            b.close()
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_s3_store_full(full_s3: tuple[Backend, str], tmp_path: Path) -> None:
    b, url = full_s3
    _, line, code = fill(b, url, tmp_path, 128)
    # SeaweedFS answers a write it has no room for with a plain "500 InternalError": nothing tells it
    # from another failure of the store, so it is a backup folder problem (7) in the store's own words
    # (a store that says it is full, as MinIO does with XMinioStorageFull, gives 10).
    assert code == 7 and "the store said" in line and "InternalError" in line, (code, line)
