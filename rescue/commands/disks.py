"""`rescue disks`: which disk is which (model, serial, size, partitions, Windows found)."""

from __future__ import annotations

import dataclasses

import click

from core.disk.discover import describe, list_disks

from ..output import emit_json, human


@click.command("disks")
@click.option("--json", "as_json", is_flag=True, help="Print the disks as JSON.")
def command(as_json: bool) -> int:
    """List the disks of this machine with their partitions and what is on them."""
    disks = list_disks()
    if as_json:
        emit_json([dataclasses.asdict(d) for d in disks])
        return 0
    if not disks:
        click.echo("no disks found")
    for d in disks:
        flags = [f for f, on in (("removable", d.removable), ("read-only", d.read_only)) if on]
        flags += d.busy
        click.echo(f"{describe(d)}  {d.bus or '-'}  {d.table or '-'}"
                   f"{'  [' + ', '.join(flags) + ']' if flags else ''}")
        for p in d.partitions:
            extra = "  Windows" if p.has_windows else ""
            click.echo(f"    {p.number:>2}  start {p.start:>14}  {human(p.size):>10}  {p.fs or '?':10} "
                       f"{p.label!r}{extra}")
    return 0
