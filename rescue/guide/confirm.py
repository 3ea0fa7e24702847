"""The plan of a restore or clone (partitions old -> new), the confirmation (the target's name typed
back, as the CLI asks; a wrong name writes nothing and asks again) and the writing job after it."""

from __future__ import annotations

from typing import Any, Callable

import urwid

from core.errors import Warning_
from core.progress import Progress

from ..context import accepted_names
from . import job, result
from .app import Guide
from .ui import Entry, form, frame, human, texts


def plan_lines(plan: Any) -> list[urwid.Widget]:
    rows = [f"Onto: {plan.target_description}", "",
            f" # {'role':14} {'fs':5} {'old size':>10} -> {'new size':>10}  action"]
    for p in plan.partitions:
        rows.append(f"{p['number']:>2} {str(p['role'])[:14]:14} {str(p['fs'] or 'raw')[:5]:5} "
                    f"{human(p['old_size']):>10} -> {human(p['new_size']):>10}  {p['action']}")
    out = texts(*rows)
    out += texts(*(f"{'warning' if isinstance(w, Warning_) else 'note'}: {w}" for w in plan.warnings),
                 style="warn")
    return out


def confirm(guide: Guide, title: str, name: str, warning: str, shown: list[urwid.Widget],
            go: Callable[[], None], back: Callable[[], None], problem: str = "") -> None:
    """Show what will be done (``shown``) and ``warning``; ``go`` runs only once ``name`` was typed
    (spaces trimmed), as shown or as a disk's short name, as the CLI takes it (`sda`, `PhysicalDrive1`)."""
    def typed(text: str) -> None:
        if text.strip() not in accepted_names(name):
            confirm(guide, title, name, warning, shown, go, back,
                    f"{text.strip()!r} is not {name!r}: nothing was written. Type it again, or Esc.")
            return
        go()

    lines = [*shown, urwid.Divider()]
    lines += texts(warning, style="error")
    if problem:
        lines += texts(problem, style="warn")
    lines += texts(f"Type the target's name ({name}) to continue:")
    keys = "Enter: confirm   Esc: cancel, nothing is written"
    guide.show(frame(title, form(lines, Entry("> ", typed)), keys),
               back)


def confirm_plan(guide: Guide, title: str, log: job.Log, plan: Any, intro: list[str],
                 execute: Callable[[Any, Progress], Any], report: Callable[[Any], list[str]],
                 next_steps: list[str], back: Callable[[], None]) -> None:
    """A restore's or clone's plan, the confirmation, then `write`; Esc closes the plan and goes back."""
    def cancel() -> None:
        plan.close()
        back()
    confirm(guide, title, plan.target, f"ALL DATA ON {plan.target_description} WILL BE OVERWRITTEN.",
            texts(*intro) + plan_lines(plan),
            lambda: write(guide, title, log, plan, execute, report, next_steps), cancel)


def write(guide: Guide, title: str, log: job.Log, plan: Any, execute: Callable[[Any, Progress], Any],
          report: Callable[[Any], list[str]], next_steps: list[str]) -> None:
    """Run ``execute(plan, progress)`` (the plan is closed after it, whatever happens), then the result
    screen with ``report(result)``, which goes to the log too."""
    log.line(f"confirmed: writing onto {plan.target}")

    def work(progress: Progress) -> Any:
        try:
            return execute(plan, progress)
        finally:
            plan.close()

    def done(j: job.Job) -> None:
        lines = [] if j.result is None else report(j.result)
        if lines:
            j.log.line(" ".join(lines))
        result.show(guide, title, j, lines, next_steps)

    job.run(guide, title, log, work, done, job.STOP_WRITE)
