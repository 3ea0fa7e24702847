"""`rescue keymap`: the layouts listed within the media's 80x25 console, and a bad name refused before
anything runs. Loading a layout is proved in the rescue VM (tests/media/test_boot.py): here it would
change this machine's own console keyboard."""

from __future__ import annotations

from tests.images import run_rescue


def test_lists_layouts_within_the_console() -> None:
    from rescue.keymap import LAYOUTS

    r = run_rescue("keymap")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, r.stdout
    for name, (_keymap, what) in LAYOUTS.items():
        assert f" {name} " in r.stdout and what in r.stdout, name
    assert "In use: " in r.stdout and "rescue keymap NAME" in r.stdout


def test_a_path_or_option_is_no_layout() -> None:
    for bad in ("../../etc/passwd", "de/x"):
        r = run_rescue("keymap", bad)
        assert r.returncode == 3, (bad, r.stdout, r.stderr)
        assert r.stderr.startswith("rescue: error: no keyboard layout") and "rescue keymap" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
