"""Shared CLI plumbing: passwords, confirmation, signal-to-cancel, progress wiring."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, Iterator
from contextlib import contextmanager

import click

from core.errors import RamFolderError, UsageError
from core.platform.ramfs import ram_filesystem
from core.progress import Progress

from .output import ProgressLine, emit_json

PASSWORD_ENV = "RESCUE_PASSWORD"
# A password file is a few bytes; refusing large files avoids reading a disk by mistake.
MAX_PASSWORD_FILE = 4096


def read_password(password_file: str | None) -> bytes | None:
    """From --password-file (first line) or RESCUE_PASSWORD; never from the command line."""
    if password_file:
        try:
            with open(password_file, "rb") as f:
                data = f.read(MAX_PASSWORD_FILE + 1)
        except OSError as e:
            raise UsageError(detail=f"cannot read password file {password_file}: {e.strerror}") from None
        if len(data) > MAX_PASSWORD_FILE:
            raise UsageError(detail=f"password file {password_file} is larger than {MAX_PASSWORD_FILE} bytes")
        pw = data.split(b"\n", 1)[0].rstrip(b"\r")
        if not pw:
            raise UsageError(detail=f"password file {password_file} is empty")
        return pw
    env = os.environ.pop(PASSWORD_ENV, None)  # read once, then gone from our environment
    if env is not None:
        if not env:
            raise UsageError(detail=f"{PASSWORD_ENV} is set but empty")
        return env.encode()
    return None


def password_source(password_file: str | None) -> Callable[[], bytes | None]:
    """A lazy password getter: asked only when an encrypted image needs it, read at most once."""
    cache: list[bytes | None] = []

    def get() -> bytes | None:
        if not cache:
            cache.append(read_password(password_file))
        return cache[0]
    return get


def refuse_ram(path: str, what: str, allow_ram: bool) -> None:
    """A folder we write what must outlive this boot into (a backup folder, a scratch folder) on a RAM
    filesystem is refused, unless --allow-ram names it on purpose: on the rescue media an unmounted
    /mnt/stick is RAM, and the backup would vanish at power-off."""
    fs = None if allow_ram else ram_filesystem(path)
    if fs:
        raise RamFolderError(what=what, path=path, fs=fs)


def scratch_check(scratch: str, allow_ram: bool) -> Callable[[Any], None]:
    """The check of a restore's or clone's plan: a shrink spills data into the scratch folder, which
    must not be RAM (see `refuse_ram`); nothing else is written there."""
    def check(plan: Any) -> None:
        if any(p["action"] == "shrink" for p in plan.partitions):
            refuse_ram(scratch, "scratch folder", allow_ram)
    return check


@contextmanager
def running(show_progress: bool = True) -> Iterator[tuple[Progress, ProgressLine]]:
    """A Progress whose cancel is wired to SIGINT/SIGTERM, and a terminal progress line."""
    line = ProgressLine(None if show_progress else False)
    progress = Progress(lambda e: line(e) and None)

    def on_signal(signum: int, frame: object) -> None:
        progress.cancel()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield progress, line
    finally:
        line.finish()
        for s, h in old.items():
            signal.signal(s, h)


def confirm_target(name: str, description: str, yes: bool) -> None:
    """A destructive step needs --yes or the target's name typed back."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(detail=f"refusing to overwrite {description} without confirmation: "
                                "pass --yes, or run on a terminal and type the target's name")
    click.echo(f"ALL DATA ON {description} WILL BE OVERWRITTEN.", err=True)
    typed = click.prompt(f"Type the target's name ({name}) to continue", err=True, default="", show_default=False)
    if typed.strip() != name:
        raise UsageError(detail=f"confirmation did not match {name!r}; nothing was written")


def plan_then_write(plan: Any, show: Callable[[Any], None], execute: Callable[[Any, Progress], Any],
                    progress: Progress, *, as_json: bool, dry_run: bool, yes: bool,
                    check: Callable[[Any], None] | None = None) -> Any | None:
    """The shape of every destructive command: check the plan, show it, stop there on --dry-run, confirm,
    write, report. Returns the result, or None for a dry run. The plan is always closed."""
    try:
        if check is not None:
            check(plan)
        if not as_json:
            show(plan)
        if dry_run:
            if as_json:
                emit_json({"dry_run": True, "plan": plan.as_json()})
            else:
                click.echo("dry run: nothing was written")
            return None
        confirm_target(plan.target, plan.target_description, yes)
        result = execute(plan, progress)
    finally:
        plan.close()
    if as_json:
        emit_json({"dry_run": False, "plan": plan.as_json(), "result": result.as_json()})
    else:
        for a in result.actions:
            click.echo(f"  {a}", err=True)
    return result
