"""The memory launcher (tests/scale/peak.py) measures each command's own peak, not its parent's.

Checked on tools with a known peak, started from this test while it holds 150 MiB itself (what made
every process in bench/'s old table show bench's own ~128 MiB): a Python process that allocates 200 MiB
must show 200-240 MiB, ``dd bs=4M`` a few MiB.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.scale.peak import TIME, measure

MiB = 1 << 20


@pytest.fixture(scope="module")
def ballast() -> bytearray:
    if not os.path.exists(TIME):
        pytest.fail(f"{TIME} is missing: scripts/setup.sh installs Debian's 'time'")
    b = bytearray(150 * MiB)
    b[::4096] = b"\x01" * len(b[::4096])  # touch every page: resident, not just reserved
    return b


def test_python_allocating_200_mib(ballast: bytearray) -> None:
    m = measure([sys.executable, "-c", "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"])
    assert m.code == 0, m.stderr
    assert 200 * MiB <= m.peak_rss <= 240 * MiB, m.peak_rss / MiB


def test_dd_with_4_mib_blocks(ballast: bytearray) -> None:
    m = measure(["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=16", "status=none"])
    assert m.code == 0, m.stderr
    assert 4 * MiB <= m.peak_rss <= 12 * MiB, m.peak_rss / MiB


def test_failing_command_keeps_its_exit_code_and_figures(ballast: bytearray) -> None:
    m = measure(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (m.code, m.stdout, m.stderr) == (3, "out\n", "err\n")
    assert 0 < m.peak_rss < 8 * MiB
