"""Review of format version 2: a point of a long chain opens within an ordinary file-descriptor limit.

A `Chain` keeps every image's volumes open, and since version 2 every image's manifest as well (its
table blocks are read while the chain is in use): two descriptors per single-volume image. Under the
usual soft limit of 1024 open files a point about 510 images deep once failed as damage ("Too many
open files", exit 20) although every file was intact; the chain now asks for the descriptors it
needs (`core.platform.limits`). The test scales that down: a chain of 40 images opened with 60
descriptors left under the soft limit.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from core.engine.view import open_view
from tests.engine.longchain import long_chain

DEPTH = 40
HEADROOM = 60


def test_v2_review_long_chain_opens_under_a_small_fd_limit(tmp_path: Path) -> None:
    folder, last, data = long_chain(tmp_path, DEPTH, b"many images ")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # New descriptors take the lowest free numbers below the limit: leave exactly HEADROOM of them.
    in_use = {int(n) for n in os.listdir("/proc/self/fd")}
    limit = 0
    while limit - len([fd for fd in in_use if fd < limit]) < HEADROOM:
        limit += 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        with open_view(str(folder), last, lambda: None) as view:
            got = view.read(0, len(data))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert got == bytes(data)
