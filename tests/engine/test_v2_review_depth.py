"""Review of format version 2: resolving a long chain must not need a Python frame per image.

A first version nested one `overlay` generator per image of the chain, so every row passed through
as many generator frames as the chain is long: with Python's recursion limit of 1000 and MAX_CHAIN
999, a point deep in such a chain ended in RecursionError (restore, mount, verify, merge). The
layers are now merged as a balanced tree. This test builds a real chain of 150 images and resolves
its last point under a recursion limit of 120 (standing for 1000 under a chain of up to 999 images
and the CLI's frames).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.engine.view import open_view
from tests.engine.longchain import long_chain

DEPTH = 150
LIMIT = 120


def test_v2_review_long_chain_resolves_in_bounded_stack(tmp_path: Path) -> None:
    folder, last, data = long_chain(tmp_path, DEPTH, b"deep chain ")
    with open_view(str(folder), last, lambda: None) as view:
        assert len(view.chain.manifests) == DEPTH
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(LIMIT)
        try:
            got = view.read(0, len(data))
        finally:
            sys.setrecursionlimit(old)
    assert got == bytes(data)
