"""The guide's main loop: which screen is shown, what Esc does there, and how the guide ends.

Engine jobs run in a worker thread (`job`); the screens are only ever changed from the loop's thread,
which polls the job's state a few times a second.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

import urwid

from core.errors import Cancelled
from core.progress import Progress

from .console import screen
from .ui import PALETTE

# How `rescue guide` ends, so the media's init knows what the user chose (on a normal machine both
# simply end the guide). Outside the exit-code table of core.errors on purpose: they are not errors.
EXIT_QUIT = 0
EXIT_SHELL = 64
EXIT_POWER_OFF = 65
EXIT_REBOOT = 66


class Guide:
    """The running guide: ``disk_files`` are image files offered as disks (--disk), or empty to discover
    the machine's disks."""

    def __init__(self, disk_files: list[str], log_dir: str | None = None) -> None:
        self.disk_files = disk_files
        self.log_dir = log_dir  # --logs: every operation's log goes there
        self.exit_code = EXIT_QUIT
        self._escape: Callable[[], None] | None = None
        self.running: Progress | None = None  # the progress of the job now running, if any
        # What must be undone however the guide ends (an image mounted for browsing): name -> undo
        self.cleanups: dict[str, Callable[[], None]] = {}
        self.terminating = False
        self.loop = urwid.MainLoop(urwid.SolidFill(" "), PALETTE, screen=screen(),
                                   unhandled_input=self._unhandled, handle_mouse=False)

    def show(self, widget: urwid.Widget, escape: Callable[[], None] | None) -> None:
        """Put ``widget`` on the screen; Esc there calls ``escape`` (None: Esc does nothing)."""
        self.loop.widget = widget
        self._escape = escape

    def _unhandled(self, key: str | tuple[str, int, int, int]) -> bool:
        if key == "esc" and self._escape is not None:
            self._escape()
            return True
        return False

    def every(self, seconds: float, fn: Callable[[], bool]) -> None:
        """Call ``fn`` every ``seconds`` until it returns False."""
        def tick(_loop: urwid.MainLoop, _data: object) -> None:
            if fn():
                self.loop.set_alarm_in(seconds, tick)
        self.loop.set_alarm_in(seconds, tick)

    def quit(self, code: int) -> None:
        self.exit_code = code
        raise urwid.ExitMainLoop()

    def _terminate(self, signum: int, frame: object) -> None:
        # SIGTERM (the system shutting down): stop a running job through the engine, then end with 130
        self.terminating = True
        if self.running is not None:
            self.running.cancel()
        else:
            os.write(self._wake, b"q")  # the loop sleeps in select(): wake it, it ends there

    def _woken(self, _data: bytes) -> bool:
        self.quit(Cancelled.exit_code)
        return False

    def run(self) -> int:
        from .main_menu import main_menu

        # Ctrl-C would kill a job between two writes; here Esc stops a job, asked once, through the engine.
        old = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
        # Windows sends no SIGTERM (a process is ended with TerminateProcess, where no handler runs), and
        # urwid has no watch_pipe there: the wake-up is for Linux only.
        if sys.platform != "win32":
            old[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._terminate)
            self._wake = self.loop.watch_pipe(self._woken)
        try:
            main_menu(self)
            self.loop.run()
        finally:
            for undo in list(self.cleanups.values()):
                undo()
            for s, h in old.items():
                signal.signal(s, h)
        return self.exit_code
