"""How a job ended: what was done and what to do next, or the error in plain words with its exit code
and the log file's name. A stopped job says that what was finished before is untouched."""

from __future__ import annotations

from typing import Any, Sequence

from core.errors import Cancelled, Error, Warning_, warnings_exit_code

from .app import Guide
from .job import Job
from .ui import frame, human, menu, texts


def show(guide: Guide, title: str, job: Job, done: list[str], next_steps: list[str],
         warnings: Sequence[str] | None = None) -> None:
    """``warnings``: those of the job, when its result does not carry them (``result.warnings``)."""
    from .main_menu import main_menu

    lines = []
    if job.error is not None:
        e = job.error
        if isinstance(e, Cancelled):
            lines += texts("Stopped.", job.stop_note, style="warn")
        else:
            lines += texts("It did not work:", style="error")
        lines += texts(e.message, f"(exit code {e.exit_code})", *done)
        job.log.line(f"ended: exit {e.exit_code}")
    else:
        warnings = warnings if warnings is not None else list(getattr(job.result, "warnings", []))
        code = warnings_exit_code(warnings)
        lines += texts("Done.", style="good")
        lines += texts(*done)
        # as the CLI says them: a warning has an exit code (core.errors.Warning_), a plain string informs
        lines += texts(*(f"{'warning' if isinstance(w, Warning_) else 'note'}: {w}" for w in warnings),
                       style="warn")
        if code:
            lines += texts(f"(exit code {code})")
        lines += texts("", *next_steps)
        job.log.line(f"ended: exit {code}")
    lines += texts("", f"Log: {job.log.path}")
    if job.log.error:
        lines += texts(job.log.error, style="warn")
    body = menu(lines, [("Back to the main screen", lambda: main_menu(guide))])
    guide.show(frame(title, body, "Enter: main screen"), lambda: main_menu(guide))


def refused(guide: Guide, title: str, error: Error, back: str = "Back to the main screen") -> None:
    """An engine refusal before anything was written, in the engine's own words."""
    from .main_menu import main_menu

    lines = texts("This cannot be done:", style="error")
    lines += texts(error.message, f"(exit code {error.exit_code})", "", "Nothing was written.")
    guide.show(frame(title, menu(lines, [(back, lambda: main_menu(guide))]), "Enter: main screen"),
               lambda: main_menu(guide))


def written(r: Any) -> str:
    """The line a restore's or clone's result screen says about the bytes written and read back."""
    return (f"{human(r.written_bytes)} written, {human(r.verified_bytes)} read back and checked "
            f"in {r.seconds:.0f} s.")
