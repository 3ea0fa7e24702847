"""`rescue disks`: which disk is which (model, serial, size, partitions, Windows found)."""

from __future__ import annotations

import dataclasses
import sys

import click

if sys.platform == "win32":  # the same rows from Windows' own queries (\\.\PhysicalDriveN)
    from core.platform.windows.discover import list_disks
else:
    from core.disk.discover import list_disks

from ..output import emit_json, fit, human


@click.command("disks")
@click.option("--json", "as_json", is_flag=True, help="Print the disks as JSON.")
def command(as_json: bool) -> int:
    """List the disks of this machine: bus, size, model, and each partition's filesystem, label, size and
    free space (from the filesystem's allocation map, or the kernel's when it is mounted; "?" when
    neither tells). An md RAID array is one disk (level, state, members); its members say so and are
    not targets."""
    disks = list_disks()
    if as_json:
        emit_json([dataclasses.asdict(d) for d in disks])
        return 0
    if not disks:
        click.echo("no disks found")
    for d in disks:
        flags = [f for f, on in (("removable", d.removable), ("read-only", d.read_only)) if on]
        flagged = f"  [{', '.join(flags)}]" if flags else ""
        click.echo(fit(f"{d.name}  {d.description}  {d.table or '-'}{flagged}"))
        about = ", ".join(x for x in (d.model, f"serial {d.serial}" if d.serial else "",
                                      f"file {d.backing_file}" if d.backing_file else "") if x)
        if about:
            click.echo(f"      {about}")  # may name a file: whole, as the paths below
        if d.raid is not None:
            degraded = f", {d.raid.degraded} missing" if d.raid.degraded else ""
            click.echo(fit(f"      metadata {d.raid.metadata or '?'}{degraded}; members: "
                           f"{', '.join(d.raid.members) or 'none'}"))
        for b in d.busy:
            click.echo(fit(f"      in use: {b}"))
        for p in d.partitions:
            free = f"{human(p.free)} free" if p.free is not None else "? free"
            extra = "  Windows" if p.has_windows else ""
            label = repr(p.label) if p.label else "-"
            click.echo(fit(f"  {p.number:>3}  {p.fs or '?':8} {label:18} {human(p.size):>10}  {free:>14}{extra}"))
            # paths whole, never cut (a long one wraps): they are what the user types next
            if p.member_of:
                click.echo(f"         member of RAID array {p.member_of}")
            if p.mounted_at:
                click.echo(f"         mounted on {p.mounted_at}")
            for folder in p.backup_folders:
                click.echo(f"         backups in {folder}")
    return 0
