"""`rescue help [exit-codes|COMMAND]`: the overview, the exit-code table, or one command's help.

The exit codes live here rather than in `rescue --help`, which must fit the rescue media's console.
"""

from __future__ import annotations

import click

from core.errors import UsageError


@click.command("help")
@click.argument("topic", required=False)
def command(topic: str | None) -> int:
    """Show the overview, `exit-codes` (what each exit code means) or a COMMAND's help."""
    from ..cli import cli, exit_codes_help, overview

    if topic is None:
        click.echo(overview(), nl=False)
    elif topic == "exit-codes":
        click.echo(exit_codes_help(), nl=False)
    else:
        ctx = click.get_current_context()
        sub = cli.get_command(ctx, topic)
        if sub is None:
            raise UsageError(detail=f"no help on {topic!r}: type `rescue help exit-codes` or "
                                    "`rescue help COMMAND` (`rescue --help` lists the commands)")
        with click.Context(sub, info_name=topic, parent=ctx.parent) as sub_ctx:
            click.echo(sub.get_help(sub_ctx))
    return 0
