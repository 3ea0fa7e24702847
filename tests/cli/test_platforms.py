"""What runs on WinPE and what does not: one table (rescue/platforms.py), the CLI and README agree.

On Windows a command that needs the Linux tools exits 6 with one line naming why and what to use
instead, whatever its arguments; a restore or clone whose plan needs ntfsresize or ntfs-3g after the
data is written is refused at the plan, before the target is touched. Windows is simulated here by
``sys.platform`` (the checks read nothing else); tests/windows runs the real rescue.exe under Wine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.restore import plan_restore
from core.errors import UnsupportedError
from core.progress import Progress
from rescue import cli, platforms
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info

ROOT = Path(__file__).resolve().parent.parent.parent
MiB = 1 << 20


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return int(e.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(platforms.UNAVAILABLE))
def test_linux_only_commands_exit_6_on_windows(name: str, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms, "on_windows", lambda: True)
    code, err = run([name, "X:\\backups", "\\\\.\\PhysicalDrive1", "--yes", "--json"], capsys)
    assert code == 6
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not available on Windows" in lines[0] and platforms.INSTEAD in lines[0], err
    code, err = run([name, "--help"], capsys)
    assert code == 0


def test_the_same_commands_run_on_linux(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(["mount", "--help"], capsys)
    assert code == 0
    assert "Not available on Windows" not in capsys.readouterr().out


def readme_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Linux media and WinPE", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `rescue ([a-z-]+)` \| (.*?) \| (.*?) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_readme_table_follows_the_platform_table() -> None:
    rows = readme_table()
    assert set(rows) == set(cli.COMMANDS) - {"help"}
    for name, (linux, winpe) in rows.items():
        assert linux == "yes", name
        if name in platforms.UNAVAILABLE:
            assert winpe == f"no: {platforms.UNAVAILABLE[name]}", name
        elif name in platforms.LIMITS:
            assert winpe == f"yes, but {platforms.LIMITS[name]}", name
        else:
            assert winpe == "yes", name


@pytest.mark.root
def test_restore_needing_linux_tools_is_refused_at_its_plan_on_windows(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore onto a bigger disk grows NTFS (ntfsresize): refused before the target is opened for
    writing on Windows, with the tool and the way out named; the same plan on Linux goes through."""
    need_root_tools("ntfs-3g", "ntfsresize")
    info = cached_disk_info("mbr-small")
    folder = tmp_path / "bk"
    backup(str(info.path), str(folder), BackupOptions(), Progress())
    target = tmp_path / "t.img"
    with open(target, "wb") as f:
        f.truncate(int(info.size * 1.5) // MiB * MiB)
    before = target.read_bytes()
    plan = plan_restore(str(folder), None, str(target), lambda: None, Progress())
    plan.close()
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(UnsupportedError, match=r"resizing NTFS of partition \d needs ntfsresize, a Linux tool"):
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    monkeypatch.undo()
    assert target.read_bytes() == before


@pytest.mark.parametrize("typed,ok", [("PhysicalDrive1", True), ("physicaldrive1", True), ("\\\\.\\PhysicalDrive1", True),
                                       ("PhysicalDrive2", False), ("1", False), ("sda", False)])
def test_a_windows_disk_is_confirmed_by_its_short_name(typed: str, ok: bool, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """As `sda` stands for /dev/sda, `PhysicalDrive1` (in any case) stands for \\\\.\\PhysicalDrive1."""
    from core.errors import UsageError
    from rescue import context

    answers = iter([typed] * context.MAX_TRIES)
    monkeypatch.setattr(context.click, "prompt", lambda *a, **k: next(answers))
    if ok:
        context.confirm_typed("\\\\.\\PhysicalDrive1", "ALL DATA ON IT WILL BE OVERWRITTEN.", "target's name")
    else:
        with pytest.raises(UsageError, match="did not match"):
            context.confirm_typed("\\\\.\\PhysicalDrive1", "ALL DATA ON IT WILL BE OVERWRITTEN.", "target's name")
