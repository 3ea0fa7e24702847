"""`rescue unlock FOLDER`: clear a backup folder's lock left by a writer that is gone (a machine that
died or was switched off in the middle of a backup into a shared folder)."""

from __future__ import annotations

import sys

import click

from core.engine.repo import Repository
from core.errors import UsageError
from core.platform.console import is_terminal

from ..context import confirm_typed
from ..output import emit_json, say
from ..remote import remote_folder


@click.command("unlock")
@click.argument("folder")
@click.option("--yes", is_flag=True, help="Clear it without asking (make sure no backup is running).")
@click.option("--json", "as_json", is_flag=True, help="Print who held the lock as JSON.")
@remote_folder()
def command(folder: str, yes: bool, as_json: bool) -> int:
    """Remove FOLDER's rescue.lock. A lock held by a process of this very boot of this machine that is
    gone is cleared by the next backup anyway; one of another machine never is (its pid means nothing
    here): check that no backup is running there, then unlock."""
    repo = Repository(folder)
    holder = repo.holder()
    if holder is None:
        if as_json:
            emit_json({"unlocked": False, "holder": None})
        else:
            say("the folder is not locked")
        return 0
    who = f"pid {holder.get('pid')} on {holder.get('host')}"
    if not yes:
        if as_json or not is_terminal(sys.stdin):
            raise UsageError(detail=f"the lock is held by {who}: pass --yes to clear it")
        confirm_typed("unlock", f"The lock is held by {who} since {holder.get('time')}.\n"
                                "Clear it only if no backup is running there.", "word")
    repo.break_lock()
    if as_json:
        emit_json({"unlocked": True, "holder": holder})
    else:
        say(f"lock of {who} cleared")
    return 0
