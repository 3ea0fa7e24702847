"""The `rescue` command: a click group whose subcommands live one per module in rescue.commands.

This is the only layer that prints, prompts or reads the environment. Every `core.errors.Error` is
shown as one line on stderr (and as JSON on stdout with --json) and becomes its documented exit code;
nothing else escapes as a traceback unless RESCUE_DEBUG=1.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
import textwrap
from typing import Any

import click

from core import __version__
from core import selftest
from core.errors import Cancelled, Error, UsageError, exit_codes
from core.platform.console import utf8_when_redirected

from . import platforms

# Command name -> its module in rescue.commands, imported only when that command runs (or for
# --help): importing all of them costs ~0.2 s, a tenth of a small incremental backup.
COMMANDS = {"disks": "disks", "backup": "backup", "list": "listing", "verify": "verify", "restore": "restore",
            "clone": "clone", "merge": "merge", "prune": "prune", "mount": "mount", "umount": "umount",
            "extract": "extract", "bcd": "bcd", "fix-boot": "fix_boot", "adapt": "adapt", "help": "help",
            "guide": "guide", "keymap": "keymap", "unlock": "unlock", "net": "net",
            "serve": "serve", "receive": "receive"}

# The overview `rescue --help` prints: the common jobs in plain words. It must fit the Linux console of
# the rescue media (80x25, no scrollback), so the rest (options, exit codes) is one command away.
COMMON_JOBS = [
    ("rescue disks", "which disk is which: sda, nvme0n1 ..."),
    ("rescue backup /dev/sda FOLDER", "image the whole disk into FOLDER"),
    ("rescue backup /dev/sda FOLDER --incremental", "only what changed"),
    ("rescue list FOLDER", "the backups in FOLDER"),
    ("rescue verify FOLDER", "check every block of the latest backup"),
    ("rescue restore FOLDER /dev/sdb", "put the latest backup onto a disk"),
    ("rescue clone /dev/sda /dev/sdb", "copy a disk onto another"),
    ("rescue mount FOLDER /mnt/img", "browse a backup, read-only"),
    ("rescue extract FOLDER PATH --to DIR", "take files out of a backup"),
]
# The console's width: every line of the overview fits it.
CONSOLE_WIDTH = 80


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        if cmd_name in platforms.UNAVAILABLE and platforms.on_windows():
            return platforms.unavailable_command(cmd_name)  # its module may import what Windows lacks
        command: click.Command = importlib.import_module(f"rescue.commands.{module}").command
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        # A typo (`rescue restor`) gets the command it probably meant, in the same one line.
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            if close:
                raise click.UsageError(f"no such command {name!r}; did you mean {close[0]}?", ctx)
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(overview())


def overview() -> str:
    """`rescue --help`: what the commands are for, in at most 25 lines of 80 columns."""
    width = max(len(cmd) for cmd, _ in COMMON_JOBS if len(cmd) < 38) + 2
    lines = ["Usage: rescue COMMAND [ARGS]...",
             "",
             "Back up, restore and clone the disks of Windows PCs, offline.",
             "",
             "Common jobs:"]
    for cmd, what in COMMON_JOBS:
        if len(cmd) + 2 + len(what) + 2 > CONSOLE_WIDTH or len(cmd) >= width:
            lines += [f"  {cmd}", f"  {'':{width}}{what}"]
        else:
            lines.append(f"  {cmd:{width}}{what}")
    shown = {cmd.split()[1] for cmd, _ in COMMON_JOBS}
    others = " ".join(c for c in COMMANDS if c not in shown and c != "help")
    lines += [""] + textwrap.wrap(f"Other commands: {others}", CONSOLE_WIDTH - 2, subsequent_indent="  ")
    lines += ["",
              "rescue COMMAND --help     what a command does and its options",
              "rescue help exit-codes    what each exit code means",
              "rescue --version          the version of this program"]
    return "\n".join(lines) + "\n"


def exit_codes_help() -> str:
    """`rescue help exit-codes`: the one table in core.errors (as README's table is), 80 columns wide."""
    lines = ["Exit codes (stable: scripts may rely on them):"]
    for code, meaning in exit_codes():
        lines += textwrap.wrap(meaning, CONSOLE_WIDTH - 2, initial_indent=f"  {code:>3}  ",
                               subsequent_indent=" " * 7)
    return "\n".join(lines) + "\n"


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": CONSOLE_WIDTH})
@click.version_option(__version__, prog_name="rescue")
def cli() -> None:
    """Offline backup, restore and cloning of Windows disks from rescue media."""
    selftest.run()  # known-answer tests of the crypto and compression before any work


def main(argv: list[str] | None = None) -> None:
    # The pipeline's main thread releases and retakes the GIL around every read, write and hash;
    # with the default 5 ms switch interval it waits behind the workers each time (measured: 10 %
    # faster backups at 0.5 ms).
    sys.setswitchinterval(0.0005)
    for stream in (sys.stdout, sys.stderr):
        utf8_when_redirected(stream)  # Windows: a pipe or file in UTF-8, not cp1252
    json_mode = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="rescue", standalone_mode=False)
    except click.exceptions.Abort:
        _fail(Cancelled(detail="aborted"), json_mode)
    except click.exceptions.NoArgsIsHelpError as e:
        # `rescue` or `rescue bcd` alone: a person finding their way. The help, not an error.
        click.echo(e.ctx.get_help())
        sys.exit(0)
    except click.exceptions.ClickException as e:
        # click's own three lines (Usage / Try / Error) become our one line, exit 3
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _fail(UsageError(detail=e.format_message().rstrip(".") + hint), json_mode)
    except Error as e:
        _fail(e, json_mode)
    except KeyboardInterrupt:
        _fail(Cancelled(detail="interrupted"), json_mode)
    except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
        if os.environ.get("RESCUE_DEBUG"):
            raise
        click.echo(f"rescue: internal error: {type(e).__name__}: {e} (RESCUE_DEBUG=1 shows details)", err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(e: Error, json_mode: bool) -> None:
    click.echo(f"rescue: error: {e.message}", err=True)
    if json_mode:
        out: dict[str, Any] = {"error": e.message, "exit_code": e.exit_code, "kind": type(e).__name__}
        result = getattr(e, "result", None)
        if result is not None and hasattr(result, "as_json"):
            out["result"] = result.as_json()
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
