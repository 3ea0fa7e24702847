"""`rescue guide`: the guided console (keyboard-only text screens) for people who do not type commands."""

from __future__ import annotations

import sys

import click

from core.errors import UsageError
from core.platform.console import is_terminal


@click.command("guide")
@click.option("--disk", "disk_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Offer this image file as a disk (repeatable; for tests and demos). "
                   "Without it, the machine's disks are offered.")
@click.option("--logs", "log_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder for the log of each operation (default: the backup folder; /var/tmp, on Windows "
                   "its temporary folder, for a clone or a boot repair).")
def command(disk_files: tuple[str, ...], log_dir: str | None) -> int:
    """Back up, restore or clone step by step, by keyboard, in a text console (80x25 is enough).

    Nothing is written to a disk before its plan was shown and its name typed back, as the other
    commands ask. Exit status: 0 when the user leaves, 64 when Shell was chosen, 65 for Power off, 66
    for Restart (the rescue media's console session acts on them: a shell, poweroff, reboot; on WinPE
    the guide powers off or restarts itself, with wpeutil); a job's own result is shown on its screen
    and in its log. Runs in a Linux terminal and in a Windows console (WinPE's).
    """
    # urwid only when the guide runs (the other commands start faster); before the terminal check, so
    # that the frozen build's smoke test, which has no terminal, proves the toolkit is in the bundle
    from rescue.guide.app import Guide

    if not (is_terminal(sys.stdin) and is_terminal(sys.stdout)):
        raise UsageError(detail="the guide needs a terminal (run it on a console, over SSH or in tmux)")
    return Guide(list(disk_files), log_dir).run()
