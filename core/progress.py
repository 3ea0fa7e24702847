"""Progress reporting and cancellation (after wimlib's progress callback).

The engine calls ``progress(event)`` at stage changes and about every few MiB of work. The callback
returns nothing to continue or raises nothing; to cancel, it returns ``False`` (or the CLI's SIGINT
handler sets the token). The engine then raises `core.errors.Cancelled` at the next safe point, after
leaving every file it touched in the state FORMAT.md describes for an interruption.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import Cancelled


@dataclass
class Event:
    """One progress report. ``done``/``total`` count the current stage's work in ``unit``: "bytes", or
    "blocks" where a stage counts items (verify checks blocks of unequal sizes), so a display never
    shows a count as a size."""

    stage: str
    done: int = 0
    total: int = 0
    message: str = ""
    unit: str = "bytes"
    extra: dict[str, object] = field(default_factory=dict)


ProgressFn = Callable[[Event], Optional[bool]]


class Progress:
    """Wraps a user callback; a cancel token shared with signal handlers."""

    def __init__(self, callback: ProgressFn | None = None) -> None:
        self._callback = callback
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, event: Event) -> None:
        if self._callback is not None and self._callback(event) is False:
            self._cancel.set()
        self.check()

    def check(self) -> None:
        """Raise `Cancelled` if a cancel was asked for; call at safe points only."""
        if self._cancel.is_set():
            raise Cancelled(detail="cancelled by the user")


NULL_PROGRESS = Progress()
