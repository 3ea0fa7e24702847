"""Shared CLI plumbing: passwords, confirmation, signal-to-cancel, progress wiring."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from typing import Any, Callable, Iterator, TypeVar
from contextlib import contextmanager

import click

from core.errors import RamFolderError, UsageError, WrongPassword
from core.platform.console import is_terminal
from core.platform.ramfs import ram_filesystem
from core.progress import Progress

from .output import ProgressLine, emit_json, say

T = TypeVar("T")

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


# Tries at typing a password (or its repetition, or a confirmation) before the command gives up: enough
# for a typo or two, few enough that a script stuck on a terminal ends.
MAX_TRIES = 3


def ask_password(new: bool) -> bytes | None:
    """Ask on the terminal, never echoed. A new backup's password is typed twice (a typo would make the
    backup unrestorable); there an empty answer means "not encrypted". None when stdin is no terminal."""
    if not is_terminal(sys.stdin):
        return None
    for _ in range(MAX_TRIES):
        with _interruptible():
            pw = click.prompt("Password (empty: not encrypted)" if new else "Password", hide_input=True,
                              err=True, default="", show_default=False)
        if not new:
            if pw:
                return str(pw).encode()
            click.echo("rescue: the password is empty; type it again", err=True)
            continue
        if not pw:
            return None
        with _interruptible():
            again = click.prompt("The same password again", hide_input=True, err=True, default="",
                                 show_default=False)
        if again == pw:
            return str(pw).encode()
        click.echo("rescue: the two passwords differ; type them again", err=True)
    raise UsageError(detail=f"no password after {MAX_TRIES} tries; nothing was done")


def new_backup_password(password_file: str | None) -> bytes | None:
    """A new image's password: --password-file, RESCUE_PASSWORD, or typed twice on the terminal."""
    pw = read_password(password_file)
    return pw if pw is not None else ask_password(new=True)


def password_source(password_file: str | None, typed: list[bool] | None = None) -> Callable[[], bytes | None]:
    """A lazy password getter: asked only when an encrypted image needs it, read at most once; typed on
    the terminal when neither --password-file nor RESCUE_PASSWORD gives it (``typed`` then holds True)."""
    cache: list[bytes | None] = []

    def get() -> bytes | None:
        if not cache:
            pw = read_password(password_file)
            if pw is None:
                pw = ask_password(new=False)
                if pw is not None and typed is not None:
                    typed.append(True)
            cache.append(pw)
        return cache[0]
    return get


def with_password(password_file: str | None, run: Callable[[Callable[[], bytes | None]], T]) -> T:
    """``run(password)``, asking again when a password typed on the terminal was wrong (MAX_TRIES in all).
    Safe to repeat: every engine call checks the password before it writes anything."""
    for _ in range(MAX_TRIES - 1):
        typed: list[bool] = []
        try:
            return run(password_source(password_file, typed))
        except WrongPassword:
            if not typed:
                raise  # from a file or the environment: asking again would not change it
            click.echo("rescue: wrong password; try again", err=True)
    return run(password_source(password_file))  # the last try: a wrong password ends the command


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
    progress = Progress(line)

    def on_signal(signum: int, frame: object) -> None:
        progress.cancel()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield progress, line
    finally:
        line.finish()
        for s, h in old.items():
            signal.signal(s, h)


def confirm_target(name: str, description: str, yes: bool, *, verb: str = "overwrite") -> None:
    """A destructive step needs --yes or the target's name typed back: as shown, or a disk's short name
    (`sda` for /dev/sda), nothing else. A mistyped name is asked again (MAX_TRIES in all). ``verb`` says
    what happens to it ("overwrite", "delete")."""
    if yes:
        return
    what = "target's name" if verb == "overwrite" else "name"
    if not is_terminal(sys.stdin):
        raise UsageError(detail=f"refusing to {verb} {description} without confirmation: "
                                f"pass --yes, or run on a terminal and type the {what}")
    headline = (f"ALL DATA ON {description} WILL BE OVERWRITTEN." if verb == "overwrite"
                else f"{description} WILL BE {verb.upper()}D.")
    confirm_typed(name, headline, what)


_WINDOWS_DISK = re.compile(r"\\\\[.?]\\((?i:PhysicalDrive)(\d+))")


def accepted_names(name: str) -> set[str]:
    """What may be typed to confirm ``name``: itself, or a disk's short name (`sda` for /dev/sda,
    `PhysicalDrive1` for \\\\.\\PhysicalDrive1); the CLI and the guide ask the same."""
    accepted = {name}
    if name.startswith("/dev/") and "/" not in name[len("/dev/"):]:
        accepted.add(name[len("/dev/"):])
    short = _WINDOWS_DISK.fullmatch(name)
    if short:  # \\.\PhysicalDrive1 on Windows: PhysicalDrive1 too, in any case, as Windows names it
        accepted |= {short.group(1), short.group(1).lower(), short.group(1).upper(), "PhysicalDrive" + short.group(2)}
    return accepted


def confirm_typed(name: str, headline: str, what: str) -> None:
    """``headline``, then ``name`` typed back on the terminal (as shown, or a disk's short name: `sda`
    for /dev/sda, `PhysicalDrive1` for \\\\.\\PhysicalDrive1; nothing else), asked again when mistyped (MAX_TRIES in all)."""
    accepted = accepted_names(name)
    click.echo(headline, err=True)
    for attempt in range(1, MAX_TRIES + 1):
        with _interruptible():
            typed = click.prompt(f"Type the {what} ({name}) to continue", err=True, default="",
                                 show_default=False)
        if str(typed).strip() in accepted:
            return
        if attempt < MAX_TRIES:
            click.echo(f"rescue: {str(typed).strip()!r} is not {name}; type it again (Ctrl-C stops)", err=True)
    raise UsageError(detail=f"confirmation did not match {name!r} in {MAX_TRIES} tries; nothing was written")


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C at a prompt stops the command (exit 130), even inside `running`, whose handler only asks
    the engine to cancel at its next safe point, which a prompt never reaches."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


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
        if result.actions:
            click.echo("done:", err=True)
        for a in result.actions:
            say(a, err=True, indent="  ")
    return result
