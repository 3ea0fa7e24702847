"""Shared test fixtures: paths to ../shared/fixtures, root/loop/ntfs-3g availability."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


def shared_fixture(rel: str) -> Path:
    """Path of a real Windows sample in ../shared/fixtures; skip (saying why) when it is absent."""
    p = SHARED_FIXTURES / rel
    if not p.exists():
        pytest.skip(f"shared fixture {p} is absent (tests read the real samples from ../shared/fixtures)")
    return p


def need_root_tools(*tools: str) -> None:
    """Skip when not root / a tool is missing: only where the machine truly lacks the feature."""
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, FUSE); CI runs as root")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")


# Hypothesis: "ci" keeps the whole property/fuzz budget to a couple of minutes; "nightly" digs deeper.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=300, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("nightly", max_examples=20000, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", max_examples=100, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
except ImportError:  # hypothesis is a test dependency; without it only the property tests fail
    pass
