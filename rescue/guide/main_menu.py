"""The first screen: the jobs the guide does, the keyboard layout, the shell, power off and restart."""

from __future__ import annotations

from . import backup, clone, files, keyboard, repair, restore
from .app import EXIT_POWER_OFF, EXIT_REBOOT, EXIT_SHELL, Guide
from .ui import frame, menu, texts


def main_menu(guide: Guide) -> None:
    items = [
        ("Back up this PC", lambda: backup.start(guide)),
        ("Restore a backup", lambda: restore.start(guide)),
        ("Copy to a new disk (clone)", lambda: clone.start(guide)),
        ("Take files out of a backup", lambda: files.start(guide)),
        ("Repair Windows startup", lambda: repair.start(guide)),
        (keyboard.label(), lambda: keyboard.start(guide)),
        ("Shell", lambda: guide.quit(EXIT_SHELL)),
        ("Power off", lambda: guide.quit(EXIT_POWER_OFF)),
        ("Restart", lambda: guide.quit(EXIT_REBOOT)),
    ]
    intro = texts("What do you want to do?", "",
                  "No disk is overwritten until you have seen the plan and typed its name.")
    guide.show(frame("main screen", menu(intro, items), "Up/Down: choose   Enter: select"), None)
