"""`rescue-build windows` without Wine: its refusals are one line, before any work is done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder import wine
from builder.errors import MissingTool
from builder.windows import build_windows
from tests.windows.conftest import WINE_CACHE

ROOT = Path(__file__).resolve().parents[2]


def test_a_foreign_out_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    r = subprocess.run([sys.executable, "-c", "from builder.cli import main; main()", "windows",
                        "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True,
                       timeout=120, check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "holds no earlier rescue.exe" in r.stderr, r.stderr
    assert (out / "notes.txt").read_text() == "not ours" and not (tmp_path / "work").exists()


def test_a_missing_host_tool_names_its_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """osslsigncode, the first tool the build needs, absent from PATH and from Wine's folders."""
    monkeypatch.setattr(wine, "_WINE_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingTool) as e:
        build_windows(tmp_path / "out", tmp_path / "work", WINE_CACHE)
    assert e.value.message.endswith("apt-get install osslsigncode)"), e.value.message
    assert not (tmp_path / "out").exists()
