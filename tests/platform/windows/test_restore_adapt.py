"""`rescue restore --adapt` on Windows: the plan lets it through, and the adapt finds the volume Windows
mounts on the restored partition, edits the hive through it and flushes it, on the Win32 fake.

Windows is simulated as tests/platform/windows/test_windows_disk.py does it (the engine's disk names
bound to the Windows backend, the fake installed) and ``sys.platform`` says win32, so the platform layer
chooses the Windows path (`core.platform.ntfs`) and any Linux tool the restore would call is refused.
The target is a blank disk: its volumes appear only when Windows re-reads the partition table written
last (the fake makes them on IOCTL_DISK_UPDATE_PROPERTIES, as Windows does). The folder standing for
the restored Windows volume holds that Windows' own SYSTEM hive (copied out of the source through
ntfs-3g); hivex checks that exactly the intended values changed. (A restore that needs ntfsresize
stays refused at its plan on Windows, --adapt or not: tests/cli/test_platforms.py.)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from core.engine import restore as restore_mod
from core.engine import target as target_mod
from core.engine.backup import BackupOptions, backup
from core.engine.restore import execute_restore, plan_restore
from core.errors import UnsupportedError
from core.platform.windows import devtree, seam
from core.platform.windows import disk as windisk
from core.progress import Progress
from core.disk.controller import Controller
from core.regf.hive import Hive
from core.repair import adapt_disk as adapt_mod
from core.repair.adapt import plan_adapt
from rescue.commands.adapt import adapt_request
from tests.adapt.hive_diff import assert_only_edits, dump
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info
from tests.ntfs3g import mounted_ntfs
from tests.platform.windows.fake_win32 import FakeDisk, FakeWin32

TARGET = r"\\.\PhysicalDrive0"
SYSTEM = "Windows/System32/config/SYSTEM"


class NoTree:
    """A device tree without the disk (a disk file would have none either): --controller names it."""

    def disk_interfaces(self) -> list[str]:
        return []


def test_restore_adapt_through_the_volume_windows_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_root_tools("ntfs-3g", "losetup", "hivexsh")
    info = cached_disk_info("mbr-small", hiberfil_magic=b"wake")  # the shared image: only read
    win = info.part("windows")
    folder = tmp_path / "backups"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    volume = tmp_path / "volume"  # stands for the restored Windows partition as Windows mounts it
    (volume / SYSTEM).parent.mkdir(parents=True)
    with mounted_ntfs(info.path, win.start, win.size) as mnt:
        shutil.copyfile(mnt / SYSTEM, volume / SYSTEM)
    before, original = dump(volume / SYSTEM), (volume / SYSTEM).read_bytes()
    blank = tmp_path / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(info.size)

    monkeypatch.setattr(restore_mod, "open_target", windisk.open_target)
    monkeypatch.setattr(restore_mod, "check_target_path", windisk.check_target_path)
    monkeypatch.setattr(target_mod, "recheck", windisk.recheck)
    monkeypatch.setattr(adapt_mod, "open_source", windisk.open_source)
    monkeypatch.setattr(adapt_mod, "check_target_path", windisk.check_target_path)
    fake = FakeWin32({0: FakeDisk(blank, model="New SSD", serial="NEW1", letters={win.number: [f"{volume}/"]})})
    previous, previous_tree = seam.install(fake), devtree.install(NoTree())  # type: ignore[arg-type]
    try:
        monkeypatch.setattr(sys, "platform", "win32")
        request = adapt_request(TARGET, True, "ahci", None)  # refused at the plan before: ntfs-3g
        assert request is not None
        with pytest.raises(UnsupportedError, match="needs ntfs-3g, a Linux tool"):  # no volume from a file
            adapt_request(str(blank), True, "ahci", None)
        plan = plan_restore(str(folder), None, TARGET, lambda: None, Progress())
        plan.adapt = request
        assert not [v for v in fake.volumes if v.disk == 0]  # a blank disk: nothing mounted yet
        result = execute_restore(plan, Progress())
        monkeypatch.setattr(sys, "platform", "linux")
    finally:
        seam.install(previous)
        devtree.install(previous_tree)
        fake.close()
    assert not result.boot_problems, result.boot_problems
    # what adapt plans for this hive and a named AHCI controller, computed here on the copy kept before
    edits = plan_adapt(Hive.from_bytes(original, name="SYSTEM"), Controller("ahci", "given")).edits
    assert {(e.key.split("\\", 1)[1], e.value, e.new) for e in edits} >= {("Services\\msahci", "Start", 0)}
    assert [a for a in result.actions if a.startswith("adapt:")] == [
        f"adapt: {e.key} {e.value}: {e.old!r} -> {e.new!r}" for e in edits], result.actions
    assert_only_edits(before, volume / SYSTEM, edits)
    assert [p.name for p in (volume / SYSTEM).parent.iterdir() if ".rescue-bak-" in p.name]
    # Windows made the volume when the table was written (the last write), the restore's locks were
    # released, and only then was the volume found, written through and flushed
    name = next(v.name for v in fake.volumes if v.disk == 0 and v.partition == win.number)
    log = fake.log
    made = next(i for i, e in enumerate(log) if e[0] == "rescan" and name in e[2])
    writes = [i for i, e in enumerate(log) if e[0] == "write"]
    flush = [i for i, e in enumerate(log) if e == ("flush", name)]
    assert writes and writes[-1] < made and len(flush) == 1 and flush[0] > made
    assert [e for e in log if e[0] == "flush" and e[1] == 0]  # the disk itself was flushed too

