"""Shared test fixtures: where the real Windows samples are, root/loop/ntfs-3g availability.

The real samples (BCD stores, registry hives, an NTFS volume made by Windows) are not part of the
repository: README "Real Windows samples" says where they come from. Tests that read them find them in
``$RESCUE_SAMPLES`` (default ``../shared/fixtures`` beside the checkout). Outside CI a missing sample skips
the test with one line naming the file; in CI (``CI=true``) it fails, so a run that silently tested less
cannot pass. Every other test builds what it needs from the clone alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(os.environ.get("RESCUE_SAMPLES") or ROOT.parent / "shared" / "fixtures")
IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_fixture(rel: str) -> Path:
    """Path of a real Windows sample; skip (outside CI) or fail (in CI) with one line when it is absent.

    Callable from a test or at module level (a module whose parameters come from a sample is skipped whole).
    """
    p = SHARED_FIXTURES / rel
    if not p.exists():
        msg = f"real Windows sample {p} is absent (README \"Real Windows samples\"; set RESCUE_SAMPLES)"
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg, allow_module_level=True)
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
