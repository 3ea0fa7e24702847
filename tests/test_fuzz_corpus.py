"""R-35: every input the coverage-guided fuzzing (bench/fuzz.py) ever failed on stays fixed.

tests/fuzz_corpus/TARGET/ holds those inputs (named by the failure kind and a digest), kept for ever;
each is replayed through its target of tests/fuzz_targets.py, together with the target's seeds
(valid inputs made with the real tools), under a memory bound. Only our own error may come out.
Until the fuzzer finds a failure a target's folder does not exist: its seeds are then what is replayed.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import need_root_tools
from tests.fuzz_targets import TARGETS, corpus_dir, run, seeds

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 64 * 1024 * 1024  # < 64 MiB per case


def _replay(target: str, data: bytes, what: str) -> None:
    tracemalloc.start()
    try:
        run(target, data)  # raises whatever is not our Error: the test fails with it
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{what}: {peak} bytes"


def test_corpus_folders_name_targets() -> None:
    """A kept input under an unknown target would never be replayed."""
    folders = {p.name for p in (ROOT / "tests" / "fuzz_corpus").iterdir() if p.is_dir()}
    assert folders <= set(TARGETS), folders - set(TARGETS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kept_inputs_and_seeds(target: str) -> None:
    """# guards R-35: every kept failure of ``target`` stays fixed; its seeds (valid inputs made with
    the real tools, the fuzzer's starting points) pass too."""
    need_root_tools("sfdisk", "sgdisk", "mkntfs", "ntfscp", "mkfs.vfat", "mmd", "mcopy")
    kept = corpus_dir(ROOT, target)
    for path in sorted(kept.iterdir()) if kept.is_dir() else []:
        _replay(target, path.read_bytes(), str(path.relative_to(ROOT)))
    made = seeds(target)
    assert made
    for i, data in enumerate(made):
        _replay(target, data, f"{target} seed {i}")
