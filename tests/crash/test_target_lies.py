"""A restore target that lies must fail the restore (exit 42), never pass it: reading back is the proof.

Two lies, each served by tests/crash/liar_fuse.py over a real file:

- lost writes: the disk acknowledges 4 KiB it never stores. Caught by the read-back of that write,
  whether the target took the direct path (read back at once) or the buffered one (the final pass).
- a fake-capacity disk: addresses wrap at half the reported size, so later writes overwrite earlier
  data while each write, read back at once, looks fine. Caught only by looking again after the last
  write (the final pass's probes).

Either way the target is left without a partition table, and the message is one line naming it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from core.disk.device import Disk, open_target
from core.engine.place import Placer
from core.errors import VerifyAfterWriteError
from core.progress import NULL_PROGRESS
from tests.crash.fuseshim import mounted_shim
from tests.images import run_rescue, small_disk

SHIM = Path(__file__).with_name("liar_fuse.py")
MiB = 1 << 20


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lies")
    src = small_disk(tmp / "src.img")
    folder = tmp / "bk"
    r = run_rescue("backup", str(src), str(folder), "--json")
    assert r.returncode == 0, r.stderr
    return src, folder


def _first_data_block(src: Path, start: int) -> int:
    """Offset of the first non-zero 4 KiB block at or after ``start`` (data the restore must write)."""
    data = src.read_bytes()
    for off in range(start, len(data), 4096):
        if data[off:off + 4096].count(0) < 4096:
            return off
    raise AssertionError("no data block found")


def _restore_onto_liar(backup: tuple[Path, Path], tmp_path: Path, mode: str) -> tuple[int, str, bytes]:
    src, folder = backup
    backing = tmp_path / "backing.img"
    with open(backing, "wb") as f:
        f.truncate(src.stat().st_size)
    with mounted_shim(SHIM, [str(backing), mode], tmp_path / "mnt") as target:
        r = run_rescue("restore", str(folder), str(target), "--yes", "--json")
    return r.returncode, r.stderr, backing.read_bytes()[:512]


def test_lost_write_fails_the_restore(backup: tuple[Path, Path], tmp_path: Path) -> None:
    lost = _first_data_block(backup[0], 60 * MiB)
    code, err, sector0 = _restore_onto_liar(backup, tmp_path, f"drop:{lost}:4096")
    assert code == 42, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "read back differently" in lines[0] and "disk.img" in lines[0], lines[0]
    assert sector0 == bytes(512), "a target that failed the read-back must have no partition table"


def test_fake_capacity_disk_fails_the_restore(backup: tuple[Path, Path], tmp_path: Path) -> None:
    size = backup[0].stat().st_size
    code, err, _ = _restore_onto_liar(backup, tmp_path, f"wrap:{size // 2}")
    assert code == 42, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "read back differently" in lines[0], lines[0]


def test_honest_target_through_the_same_shim_restores(backup: tuple[Path, Path], tmp_path: Path) -> None:
    """The shim itself is sound: losing nothing, the restore through it succeeds and leaves the same
    bytes as a restore onto a plain file (so the failures above are the lies being caught)."""
    src, folder = backup
    code, err, _ = _restore_onto_liar(backup, tmp_path, "drop:0:0")
    assert code == 0, (code, err)
    plain = tmp_path / "plain.img"
    with open(plain, "wb") as f:
        f.truncate(src.stat().st_size)
    r = run_rescue("restore", str(folder), str(plain), "--yes")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "backing.img").read_bytes() == plain.read_bytes()


@contextmanager
def _liar_disk(tmp_path: Path, mode: str) -> Iterator[Disk]:
    """An 8 MiB liar target, opened as a restore opens its target."""
    backing = tmp_path / "backing.img"
    with open(backing, "wb") as f:
        f.truncate(8 * MiB)
    with mounted_shim(SHIM, [str(backing), mode], tmp_path / "mnt") as target:
        with open_target(str(target), sources=[], required_size=8 * MiB, sector_size=512) as disk:
            yield disk


def test_final_probe_catches_a_later_write_landing_on_earlier_data(tmp_path: Path) -> None:
    """Deterministic version of the fake-capacity case, one write at a time: each write reads back
    fine at once, and only the probe after the last write sees that the second destroyed the first."""
    with _liar_disk(tmp_path, f"wrap:{4 * MiB}") as disk:
        if not disk.enable_direct():
            pytest.skip("this kernel's FUSE refuses O_DIRECT: the immediate read-back path is not taken")
        placer = Placer(disk, None, [], str(tmp_path))
        placer.put(1 * MiB, b"\x11" * MiB)
        placer.put(5 * MiB, b"\x22" * MiB)  # lands on [1 MiB, 2 MiB) of the real 4 MiB
        assert placer.verified == 2 * MiB  # both read back fine right after writing
        with pytest.raises(VerifyAfterWriteError, match="after later writes"):
            placer.read_back(NULL_PROGRESS)


def test_buffered_target_is_read_back_in_full_after_the_last_write(tmp_path: Path) -> None:
    """Without direct I/O (a target that refuses it), every write goes to the final pass, which
    re-reads it whole from the medium: a lost write is caught there."""
    with _liar_disk(tmp_path, f"drop:{3 * MiB + 100}:10") as disk:
        placer = Placer(disk, None, [], str(tmp_path))  # enable_direct() not called: buffered
        placer.put(1 * MiB, b"\x11" * MiB)
        placer.put(3 * MiB, b"\x22" * MiB)
        assert placer.verified == 0
        with pytest.raises(VerifyAfterWriteError, match=f"at byte {3 * MiB} of the target"):
            placer.read_back(NULL_PROGRESS)
