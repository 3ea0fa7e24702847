"""Everything the CLI shows a person: progress on stderr (terminals only), sizes, JSON, errors."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import Any, Iterable

import click

from core.errors import Warning_, warnings_exit_code
from core.platform.console import is_terminal
from core.progress import Event


# What a line of the CLI's tables may take: the rescue media's console is 80 columns and wraps
# mid-word beyond.
WIDTH = 80


def human(n: int | float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def report_warnings(warnings: Iterable[str], *, show: bool = True) -> int:
    """The one place where a finished job's warnings reach the user: one line each on stderr (unless
    ``show`` is false: --json carries them), and the exit code they call for. A warning with an exit
    code (`core.errors.Warning_`) is a `rescue: warning:`; a plain string only informs (`rescue: note:`),
    so a line called a warning never comes with exit 0."""
    warnings = list(warnings)
    if show:
        for w in warnings:
            kind = "warning" if isinstance(w, Warning_) else "note"
            click.echo(f"rescue: {kind}: {w}", err=True)
    return warnings_exit_code(warnings)


def say(text: str, *, err: bool = False, indent: str = "") -> None:
    """A line of prose, wrapped at words to the console's width (paths are never cut: a longer one
    takes its own line)."""
    click.echo(textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                             break_long_words=False, break_on_hyphens=False), err=err)


def show_plan_warnings(warnings: Iterable[str]) -> None:
    """A plan's warnings, each called what it is: a warning (it will set the exit code) or a note."""
    for w in warnings:
        kind = "warning" if isinstance(w, Warning_) else "note"
        click.echo(textwrap.fill(str(w), WIDTH, initial_indent=f"  {kind}: ", subsequent_indent="    "), err=True)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


class ProgressLine:
    """A one-line progress display (amount, rate, ETA) on stderr, only when stderr is a terminal.

    The line is redrawn in place; a shorter line blanks what the longer one left, and the line of a
    finished stage (or one followed by a message) ends with a newline, so nothing is glued to it."""

    # A rate measured over less than this is noise (the first event of a stage, or a stage that
    # reports only its end), shown as nothing rather than as "6.6 TiB/s".
    MIN_RATE_SECONDS = 0.5

    def __init__(self, enabled: bool | None = None, stream: Any = None) -> None:
        self.enabled = is_terminal(sys.stderr) if enabled is None else enabled
        self.stream = stream  # None: click's stderr (tests pass a buffer)
        self.start = time.monotonic()
        self.stage = ""
        self.shown = 0  # length of the line now on screen, 0 when none is

    def _write(self, text: str, nl: bool) -> None:
        if self.stream is None:
            click.echo(text, err=True, nl=nl)
        else:
            self.stream.write(text + ("\n" if nl else ""))

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if event.stage != self.stage:
            self.finish()
            self.stage = event.stage
            self.start = time.monotonic()
        if event.message and not event.total:
            self.finish()
            self._write(event.message, True)
            return
        line = self.format(event, time.monotonic() - self.start)
        # blank what a longer previous line left on screen
        self._write("\r" + line + " " * max(0, self.shown - len(line)), False)
        self.shown = len(line)
        if event.total and event.done >= event.total:
            self.finish()

    @classmethod
    def format(cls, event: Event, elapsed: float) -> str:
        """The line for ``event`` after ``elapsed`` seconds of its stage, in the event's own unit."""
        def amount(n: float) -> str:
            return human(n) if event.unit == "bytes" else f"{int(n)}"

        pct = 100 * event.done / event.total if event.total else 0
        unit = "" if event.unit == "bytes" else f" {event.unit}"
        line = f"{event.stage}: {pct:5.1f}%  {amount(event.done)} / {amount(event.total)}{unit}"
        if elapsed >= cls.MIN_RATE_SECONDS and event.done > 0:
            rate = event.done / elapsed
            line += f"  {amount(rate)}{unit}/s"
            if event.total and event.done < event.total:
                eta = int((event.total - event.done) / rate)
                line += f"  ETA {eta // 60}:{eta % 60:02d}"
        return line

    def finish(self) -> None:
        if self.shown:
            self._write("", True)
            self.shown = 0


def fit(line: str, width: int = WIDTH) -> str:
    """``line`` cut to ``width`` columns, marked with "…" where it was cut."""
    return line if len(line) <= width else line[:width - 1] + "…"


def show_layout(partitions: list[dict[str, Any]]) -> None:
    """The plan table of a restore or clone: old -> new start and size (human units, so it fits 80
    columns), the filesystem action and the label (cut to fit)."""
    if not partitions:
        return
    rw = max(len("role"), *(len(p["role"]) for p in partitions))
    click.echo(f"  {'#':>2} {'role':{rw}} {'fs':6} {'start':>9} {'size':>9} -> {'start':>9} {'size':>9} action",
               err=True)
    for p in partitions:
        line = (f"  {p['number']:>2} {p['role']:{rw}} {p['fs'] or 'raw':6} {human(p['old_start']):>9} "
                f"{human(p['old_size']):>9} -> {human(p['new_start']):>9} {human(p['new_size']):>9} "
                f"{p['action']}{'  ' + repr(p['label']) if p.get('label') else ''}")
        click.echo(fit(line), err=True)
