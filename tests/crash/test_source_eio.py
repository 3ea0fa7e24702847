"""R-14: unreadable sectors in the backup *source* (a FUSE file returning EIO for chosen bytes).

The source is a real disk (tests.images.small_disk) served through tests/crash/eio_fuse.py with three
bad ranges in data the backup must read: two sectors of the NTFS volume's metadata, an unaligned
300-byte range inside a used run, and the whole of a one-sector used run. The backup must finish,
record exactly the sectors touched (backup --json and the manifest's meta "unreadable"), and exit
100; restore must report them (exit 100) and write every other byte exactly, never touching the
unreadable sectors (they keep the marker the target held: not zero-filled behind the user's back).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from core.engine.repo import Repository
from tests.crash.crashlib import sha256_file
from tests.crash.fuseshim import mounted_shim
from tests.images import run_rescue, small_disk

SHIM = Path(__file__).with_name("eio_fuse.py")
SECTOR = 512
MARK = b"\xee"

# Byte ranges that fail (tests.images.small_disk's layout: partition 1 at 1 MiB; its used runs include
# [1064960, +77824), [5550080, +417792) and the one-sector run at 36961792).
BAD = [(1064960 + 8192, 1024), (5550080 + 100000, 300), (36961792, 512)]


def sector_cover(ranges: list[tuple[int, int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for off, n in sorted(ranges):
        lo, hi = off // SECTOR * SECTOR, -(-(off + n) // SECTOR) * SECTOR
        if out and out[-1][0] + out[-1][1] >= lo:
            out[-1][1] = max(out[-1][0] + out[-1][1], hi) - out[-1][0]
        else:
            out.append([lo, hi - lo])
    return out


@pytest.fixture
def bad_source(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the plain disk file, the same disk behind the EIO shim)."""
    src = small_disk(tmp_path / "src.img")
    ranges = ",".join(f"{o}:{n}" for o, n in BAD)
    with mounted_shim(SHIM, [str(src), ranges], tmp_path / "mnt") as shim:
        yield src, shim


def test_unreadable_source_sectors_are_recorded_and_reported(bad_source: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    """# guards R-14"""
    src, shim = bad_source
    expected = sector_cover(BAD)
    assert expected == [[1064960 + 8192, 1024], [5649920, 512], [36961792, 512]]
    # The shim really fails those bytes and serves the rest.
    with open(shim, "rb", buffering=0) as f:
        with pytest.raises(OSError):
            os.pread(f.fileno(), SECTOR, expected[1][0])
        assert os.pread(f.fileno(), SECTOR, expected[1][0] + SECTOR) == \
            src.read_bytes()[expected[1][0] + SECTOR:expected[1][0] + 2 * SECTOR]

    folder = tmp_path / "bk"
    r = run_rescue("backup", str(shim), str(folder), "--json")
    assert r.returncode == 100, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    result = json.loads(r.stdout)
    assert result["unreadable"] == expected
    assert any("could not be read" in w and "3 ranges" in w for w in result["warnings"]), result["warnings"]
    manifest = Repository(str(folder)).load(result["id"], lambda: None)
    assert manifest.meta.to_json()["unreadable"] == expected
    r = run_rescue("verify", str(folder))
    assert r.returncode == 0, r.stderr  # the image itself is sound

    # Restore onto a target that holds a marker in the unreadable sectors and zeros elsewhere.
    size = src.stat().st_size
    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(size)
        for off, n in expected:
            f.seek(off)
            f.write(MARK * n)
    r = run_rescue("restore", str(folder), str(target), "--yes", "--json")
    assert r.returncode == 100, (r.returncode, r.stderr)
    out = json.loads(r.stdout)
    assert out["result"]["unreadable_in_source"] == expected
    assert any("3 unreadable ranges" in w for w in out["plan"]["warnings"]), out["plan"]["warnings"]
    r = run_rescue("restore", str(folder), str(target), "--yes")
    assert r.returncode == 100
    assert "warning: the source had 3 unreadable ranges" in r.stderr, r.stderr

    data = bytearray(src.read_bytes())
    restored = target.read_bytes()
    for off, n in expected:
        assert restored[off:off + n] == MARK * n, f"unreadable sector at {off} was written by the restore"
        data[off:off + n] = MARK * n
    # Every other byte, including the sectors right next to each bad one, is the source's.
    assert restored == bytes(data)
    assert sha256_file(target) != sha256_file(src)
