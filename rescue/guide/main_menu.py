"""The first screen: the jobs the guide does, the keyboard layout, the shell, power off and restart.

On Windows the jobs that need the Linux tools (taking files out, the startup repair: rescue/platforms.py)
say so instead of starting; on WinPE Power off and Restart go through WinPE's own ``wpeutil``
(`core.platform.winpe`), elsewhere they end the guide with their exit code for the media's session.
"""

from __future__ import annotations

from typing import Callable

from core.errors import Error
from core.platform import winpe
from rescue.platforms import INSTEAD, UNAVAILABLE, on_windows

from . import backup, clone, files, keyboard, repair, restore
from .app import EXIT_POWER_OFF, EXIT_REBOOT, EXIT_SHELL, Guide
from .ui import frame, menu, texts


def main_menu(guide: Guide) -> None:
    items = [
        ("Back up this PC", lambda: backup.start(guide)),
        ("Restore a backup", lambda: restore.start(guide)),
        ("Copy to a new disk (clone)", lambda: clone.start(guide)),
        ("Take files out of a backup", _where_it_runs(guide, "extract", lambda: files.start(guide))),
        ("Repair Windows startup", _where_it_runs(guide, "fix-boot", lambda: repair.start(guide))),
        (keyboard.label(), lambda: keyboard.start(guide)),
        ("Shell", lambda: guide.quit(EXIT_SHELL)),
        ("Power off", lambda: _power(guide, winpe.power_off, EXIT_POWER_OFF)),
        ("Restart", lambda: _power(guide, winpe.reboot, EXIT_REBOOT)),
    ]
    intro = texts("What do you want to do?", "",
                  "No disk is overwritten until you have seen the plan and typed its name.")
    guide.show(frame("main screen", menu(intro, items), "Up/Down: choose   Enter: select"), None)


def _where_it_runs(guide: Guide, command: str, start: Callable[[], None]) -> Callable[[], None]:
    """``start`` where the job runs; on Windows, when its command cannot run there, a screen saying why."""
    if not on_windows() or command not in UNAVAILABLE:
        return start

    def unavailable() -> None:
        lines = texts("Not available on Windows:", style="error")
        lines += texts(f"{UNAVAILABLE[command]}: {INSTEAD}.")
        guide.show(frame("main screen", menu(lines, [("Back to the main screen", lambda: main_menu(guide))]),
                         "Enter: main screen"), lambda: main_menu(guide))
    return unavailable


def _power(guide: Guide, act: Callable[[], None], code: int) -> None:
    """On WinPE: power off or restart now. Elsewhere the guide ends with ``code`` for whoever started it."""
    if not winpe.is_winpe():
        guide.quit(code)
        return
    try:
        act()
    except Error as e:  # wpeutil missing or failing: said, and the guide stays
        lines = texts("That did not work:", style="error") + texts(e.message)
        guide.show(frame("main screen", menu(lines, [("Back to the main screen", lambda: main_menu(guide))]),
                         "Enter: main screen"), lambda: main_menu(guide))
        return
    guide.quit(code)  # WinPE is going down: leave the screen as it is
