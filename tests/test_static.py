"""R-66 (part): the engine type-checks with `mypy --strict` (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_is_mypy_strict_clean() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "core"], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-1000:]
    assert "Success" in r.stdout
