"""The first screen: the jobs the guide does, the shell and power off."""

from __future__ import annotations

from . import backup, clone, repair, restore
from .app import EXIT_POWER_OFF, EXIT_SHELL, Guide
from .ui import frame, menu, texts


def main_menu(guide: Guide) -> None:
    def later(what: str, command: str) -> None:
        body = menu(texts(f"{what} is not in the guide yet.", "",
                          f"From the shell, the command is:  {command}",
                          "(`rescue COMMAND --help` explains it)."),
                    [("Back to the main screen", lambda: main_menu(guide))])
        guide.show(frame(what, body), lambda: main_menu(guide))

    items = [
        ("Back up this PC", lambda: backup.start(guide)),
        ("Restore a backup", lambda: restore.start(guide)),
        ("Copy to a new disk (clone)", lambda: clone.start(guide)),
        ("Take files out of a backup", lambda: later("Take files out of a backup",
                                                     "rescue extract FOLDER PATH --to DIR")),
        ("Repair Windows startup", lambda: repair.start(guide)),
        ("Shell", lambda: guide.quit(EXIT_SHELL)),
        ("Power off", lambda: guide.quit(EXIT_POWER_OFF)),
    ]
    intro = texts("What do you want to do?", "",
                  "Nothing is written to any disk until you have seen the plan and typed",
                  "the name of the disk that will be overwritten.")
    guide.show(frame("main screen", menu(intro, items), "Up/Down: choose   Enter: select"), None)
