"""What the CLI draws on a terminal: the progress line's units, its clearing and its last line."""

from __future__ import annotations

import io

from core.progress import Event
from rescue.output import ProgressLine


def test_block_counts_are_not_shown_as_bytes() -> None:
    line = ProgressLine.format(Event("verify", 17, 37, unit="blocks"), elapsed=2.0)
    assert line.startswith("verify:  45.9%  17 / 37 blocks"), line
    assert "B" not in line and "8 blocks/s" in line, line
    line = ProgressLine.format(Event("restore", 3 << 20, 6 << 20), elapsed=1.0)
    assert "3.0 MiB / 6.0 MiB  3.0 MiB/s  ETA 0:01" in line, line


def test_no_rate_from_a_near_zero_elapsed_time() -> None:
    line = ProgressLine.format(Event("restore", 6 << 40, 6 << 40), elapsed=1e-6)
    assert "/s" not in line and "ETA" not in line and line.endswith("6.0 TiB / 6.0 TiB"), line


def test_shorter_line_clears_the_longer_and_the_last_line_ends() -> None:
    out = io.StringIO()
    p = ProgressLine(True, out)
    p(Event("backup", 1 << 30, 4 << 30))
    first = out.getvalue()
    p(Event("backup", 2, 4 << 30))  # "2 B" is shorter than "1.0 GiB"
    second = out.getvalue()[len(first):]
    assert second.startswith("\r") and len(second) >= len(first), (first, second)
    p(Event("backup", 4 << 30, 4 << 30))
    assert out.getvalue().endswith("\n"), out.getvalue()  # the stage's end: nothing is glued to it
    p(Event("finishing", message="finishing: writing the manifest"))
    assert out.getvalue().endswith("\nfinishing: writing the manifest\n"), out.getvalue()
    lines = out.getvalue().split("\n")
    assert all(line.count("\r") <= 3 for line in lines)
    p.finish()  # nothing shown: no empty line
    assert out.getvalue().endswith("manifest\n") and not out.getvalue().endswith("\n\n")


def test_a_warning_survives_copy_and_pickle_with_its_class_and_code() -> None:
    """Results holding warnings go through dataclasses.asdict (deepcopy); a warning must come out whole."""
    import copy
    import pickle

    from core.errors import BootRepairWarning
    w = BootRepairWarning(detail="letters left")
    for again in (copy.copy(w), copy.deepcopy(w), pickle.loads(pickle.dumps(w))):
        assert type(again) is BootRepairWarning and again == w and again.exit_code == w.exit_code
