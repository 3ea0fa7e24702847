"""Run one engine operation in a worker thread behind a progress screen, with its log file.

The screen shows the step, a bar with bytes, rate and time left; Esc asks once whether to stop, and
stopping goes through the engine's cancellable progress (`core.progress.Progress.cancel`), so the
engine stops at its next safe point and leaves files as FORMAT.md says an interruption does.
Every stage message, the result and any error go to the log file as well.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import urwid

from core.errors import Error
from core.progress import Event, Progress

from .app import Guide
from .ui import frame, human, texts

# Where the log of a job without a backup folder goes (clone, boot repair): where the CLI puts a
# clone's scratch file, kept across reboots on a normal machine. Windows: its temporary folder (on WinPE
# that is on X:, in RAM, as the Linux media's /var/tmp is), never a "/var/tmp" on whatever drive is current.
LOG_DIR = ("/var/tmp" if sys.platform != "win32" and os.path.isdir("/var/tmp") else tempfile.gettempdir())
# Refresh of the progress screen: often enough to look alive, rare enough to cost nothing.
REFRESH_SECONDS = 0.25


class Log:
    """A plain-text log of one operation; a log that cannot be written never stops the job."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.error = ""
        self.line(f"rescue guide log, started {time.strftime('%Y-%m-%d %H:%M:%S')}")

    def line(self, text: str) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        except OSError as e:
            self.error = f"the log {self.path} could not be written: {e.strerror}"


def new_log(guide: Guide, folder: str | None, operation: str) -> Log:
    """The log of one operation: rescue-guide-YYYYMMDD-HHMMSS-OPERATION.log in the folder --logs named,
    else in ``folder`` (the backup folder), else in LOG_DIR."""
    where = guide.log_dir or folder or LOG_DIR
    return Log(os.path.join(where, f"rescue-guide-{time.strftime('%Y%m%d-%H%M%S')}-{operation}.log"))


class Job:
    """State shared between the worker thread and the screen; the screen only reads it."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.progress = Progress(self._event)
        self.event = Event("starting")
        self.stage_started = time.monotonic()
        self.result: Any = None
        self.error: Error | None = None
        self.done = False
        self.stop_note = ""

    def _event(self, event: Event) -> None:
        if event.stage != self.event.stage:
            self.stage_started = time.monotonic()
        if event.message:
            self.log.line(f"{event.stage}: {event.message}")
        self.event = event


# What stopping leaves, said before the user confirms it and on the result screen after.
STOP_NOTHING = "Nothing has been written yet."
STOP_BACKUP = "The earlier backups stay as they are; the unfinished one is removed."
STOP_WRITE = ("The target disk is left partly written and without a partition table: it will not "
              "start until a restore or copy onto it runs to the end.")
STOP_COPY = "The files copied so far stay in the folder."
STOP_REPAIR = "The repair takes seconds and is not stopped halfway: it finishes what it started."


def run(guide: Guide, title: str, log: Log, work: Callable[[Progress], Any],
        on_done: Callable[[Job], None], stop_note: str = STOP_NOTHING) -> None:
    """Show the progress screen, run ``work(progress)`` in a thread, then call ``on_done(job)``.
    ``stop_note`` says what stopping leaves (kept as ``job.stop_note`` for the result screen)."""
    job = Job(log)
    job.stop_note = stop_note
    step = urwid.Text("")
    bar = urwid.ProgressBar("bar", "bar_done", 0, 1000)
    numbers = urwid.Text("")
    note = urwid.Text("")
    body = urwid.Padding(urwid.ListBox(urwid.SimpleFocusListWalker(
        [urwid.Text(title), urwid.Divider(), step, urwid.Divider(), bar, numbers, urwid.Divider(), note])),
        left=1, right=1)
    screen = frame(title, body, "Esc: stop")

    def worker() -> None:
        try:
            job.result = work(job.progress)
        except Error as e:
            job.error = e
            log.line(f"error (exit {e.exit_code}): {e.message}")
        except Exception as e:  # a bug: said as one, never a traceback on the screen
            job.error = Error(detail=f"internal error: {type(e).__name__}: {e}")
            log.line(f"internal error: {e!r}")
        job.done = True

    def refresh() -> bool:
        e = job.event
        step.set_text(f"Step: {e.stage}" + (f" - {e.message}" if e.message else ""))
        if e.total:
            bar.set_completion(int(1000 * min(e.done, e.total) / e.total))
            elapsed = max(time.monotonic() - job.stage_started, 1e-3)
            rate = e.done / elapsed
            left = (e.total - e.done) / rate if rate > 0 else 0
            numbers.set_text(f"{human(e.done)} of {human(e.total)}   {human(rate)}/s   "
                             f"time left {int(left) // 60}:{int(left) % 60:02d}")
        if job.done:
            guide.running = None
            if guide.terminating:
                log.line("the guide was asked to end (SIGTERM); ended: exit "
                         f"{job.error.exit_code if job.error is not None else 0}")
                guide.quit(job.error.exit_code if job.error is not None else 0)
            on_done(job)
            return False
        return True

    def ask_stop() -> None:
        def stop() -> None:
            job.progress.cancel()
            note.set_text(("warn", "Stopping at the next safe point..."))
            guide.show(screen, None)

        ask = urwid.ListBox(urwid.SimpleFocusListWalker([
            *texts("Stop now?", "", stop_note, ""),
            urwid.AttrMap(urwid.Button("No, go on", on_press=lambda _b: guide.show(screen, ask_stop)),
                          None, "focus"),
            urwid.AttrMap(urwid.Button("Yes, stop", on_press=lambda _b: stop()), None, "focus")]))
        guide.show(frame(title, urwid.Padding(ask, left=1, right=1), "Enter: select   Esc: go on"),
                   lambda: guide.show(screen, ask_stop))

    guide.show(screen, ask_stop)
    guide.running = job.progress
    threading.Thread(target=worker, name="guide-job", daemon=True).start()
    guide.every(REFRESH_SECONDS, refresh)
