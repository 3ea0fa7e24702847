"""Whole-hive comparison through hivex (the independent reader): before + the plan's edits == after."""

from __future__ import annotations

from pathlib import Path

from core.regf.values import encode_value
from core.repair.adapt import HiveEdit
from tests.regf.regf_helpers import hivex_dump

Dump = dict[str, dict[str, tuple[int, str]]]


def dump(path: Path) -> Dump:
    """Every key (lower-case path) -> value name (lower case) -> (type, data hex), as hivex reads them."""
    return {k.lower(): {n.lower(): (t, d) for n, t, d in vals} for k, vals in hivex_dump(path)}


def expected_after(before: Dump, edits: list[HiveEdit]) -> Dump:
    out = {k: dict(v) for k, v in before.items()}
    for e in edits:
        key = e.key.lower()
        assert key.rsplit("\\", 1)[0] in out, f"edit below a missing key {e.key}"  # only leaves are created
        out.setdefault(key, {})[e.value.lower()] = (e.type, encode_value(e.type, e.new).hex())
    return out


def assert_only_edits(before: Dump, after_path: Path, edits: list[HiveEdit]) -> Dump:
    """Every key and value of the hive at ``after_path`` is ``before`` with ``edits`` applied, nothing else."""
    after = dump(after_path)
    expected = expected_after(before, edits)
    assert after.keys() == expected.keys(), sorted(after.keys() ^ expected.keys())[:5]
    changed = [k for k in after if after[k] != expected[k]]
    assert not changed, changed[:5]
    return after
