"""R-62: the CLI tests, run again against the PyInstaller-frozen `rescue` that goes on the media.

The frozen folder is the one `rescue-build` made for the boot tests (cached by source hash); the
same exit codes, messages and JSON must come out of it as out of `python -m rescue`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_root_tools
from tests.factory import cache_dir
from tests.media.live import built_live

ROOT = Path(__file__).resolve().parents[2]
# above the ini-wide 900 s: building (up to 1200 s) + the CLI suite (up to 1800 s)
pytestmark = [pytest.mark.root, pytest.mark.timeout(3600)]


def test_cli_suite_against_frozen_binary() -> None:
    need_root_tools("xorriso")
    built_live()  # builds (or reuses) the frozen folder among the rest
    from builder.freeze import freeze
    exe = freeze(cache_dir() / "rescue-build-work", []) / "rescue"
    assert exe.is_file() and os.access(exe, os.X_OK), exe
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/cli", "-q", "-p", "no:cacheprovider"],
                       cwd=ROOT, env={**os.environ, "RESCUE_EXE": str(exe)}, capture_output=True, text=True,
                       timeout=1800, check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout.splitlines()[-1]
