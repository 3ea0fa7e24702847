"""Everything the CLI shows a person: progress on stderr (terminals only), sizes, JSON, errors."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterable

import click

from core.errors import Warning_, warnings_exit_code
from core.progress import Event


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


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


class ProgressLine:
    """A one-line progress display (bytes, rate, ETA) on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.stage = ""
        self.shown = False

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if event.stage != self.stage:
            self.finish()
            self.stage = event.stage
            self.start = time.monotonic()
        if event.message and not event.total:
            click.echo(event.message, err=True)
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = event.done / elapsed
        eta = (event.total - event.done) / rate if rate > 0 and event.total else 0
        pct = 100 * event.done / event.total if event.total else 0
        line = (f"\r{event.stage}: {pct:5.1f}%  {human(event.done)} / {human(event.total)}  "
                f"{human(rate)}/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}   ")
        click.echo(line, err=True, nl=False)
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            click.echo("", err=True)
            self.shown = False


def show_layout(partitions: list[dict[str, Any]]) -> None:
    """The plan table of a restore or clone: old -> new start and size, and the filesystem action."""
    if not partitions:
        return
    click.echo(f"  {'#':>2}  {'role':16} {'fs':6} {'old start':>12} {'old size':>10}  ->  "
               f"{'new start':>12} {'new size':>10}  action", err=True)
    for p in partitions:
        click.echo(f"  {p['number']:>2}  {p['role']:16} {p['fs'] or 'raw':6} {p['old_start']:>12} "
                   f"{human(p['old_size']):>10}  ->  {p['new_start']:>12} {human(p['new_size']):>10}  "
                   f"{p['action']}{'  ' + repr(p['label']) if p.get('label') else ''}", err=True)
