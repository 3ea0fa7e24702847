"""How the boot-repair commands (`rescue bcd …`, `rescue fix-boot`) print their reports.

Not a command itself: shared by `rescue.commands.bcd` and `rescue.commands.fix_boot`.
"""

from __future__ import annotations

from typing import Callable

import click

from core.errors import BootRepairWarning
from core.repair import RepairReport, ShowReport

from ..context import confirm_target
from ..output import emit_json, report_warnings

AREA_TITLES = {"boot-record": "boot records", "bcd": "BCD store", "letters": "drive letters (MountedDevices)"}


def confirm(disk: str, what: str, yes: bool, dry_run: bool) -> None:
    """Destructive runs need --yes or the disk's name typed back; a dry run needs neither."""
    if not dry_run:
        confirm_target(disk, f"the {what} of {disk}", yes)


def run_repair(disk: str, what: str, yes: bool, dry_run: bool, as_json: bool,
               repair: Callable[[bool], RepairReport]) -> int:
    """The shape of every boot-repair command: a dry run just reports; otherwise the plan (a dry run of
    the same repair) is shown first, then --yes or the disk's name typed back, then the real run."""
    if dry_run:
        return print_repair(repair(True), as_json)
    if not yes:
        plan = repair(True)
        if not as_json:  # --json keeps stdout for the one result object
            print_repair(plan, False)
        confirm(disk, what, yes, dry_run)
    return print_repair(repair(False), as_json)


def print_repair(report: RepairReport, as_json: bool) -> int:
    """Print what changed (old → new per element), the backups and the problems; return the exit code."""
    if as_json:
        emit_json(report.as_json())
        return _exit_code(report)
    wins = ", ".join(str(n) for n in report.windows_partitions) or "none"
    click.echo(f"disk {report.disk}: {report.scheme.upper()}, {report.firmware.upper()} boot; boot partition "
               f"{report.boot_partition or 'none'}, Windows on partition {wins}")
    if report.store:
        click.echo(f"store: {report.store}")
    verb = "would change" if report.dry_run else "changed"
    for area, title in AREA_TITLES.items():
        changes = report.by_area(area)  # type: ignore[arg-type]
        if not changes:
            continue
        click.echo(f"{title}: {verb}")
        for c in changes:
            target = f" (partition {c.partition}" + (f"; {c.reason}" if c.reason else "") + ")" if c.partition else ""
            file = f" in {c.file}" if c.file and area == "letters" else ""
            click.echo(f"  {c.where}{file}: {c.old} → {c.new}{target}")
    if not report.changes:
        click.echo("nothing to change: everything already points where it should")
    for b in report.backups:
        click.echo(f"backup kept: {b}")
    for n in report.notes:
        click.echo(f"note: {n}")
    for p in report.problems:
        click.echo(f"problem: {p}", err=True)
    if report.dry_run:
        click.echo("dry run: nothing was written")
    return _exit_code(report)


def _exit_code(report: RepairReport) -> int:
    # the problems were printed above, with the report they belong to
    return report_warnings((BootRepairWarning(detail=p) for p in report.problems), show=False)


def print_show(report: ShowReport, as_json: bool) -> int:
    if as_json:
        emit_json(report.as_json())
        return 0
    click.echo(f"disk {report.disk}: {report.scheme.upper()} {report.disk_id}, {report.firmware.upper()} boot")
    for p in report.partitions:
        roles = [r for r, on in (("boot", p["boot"]), ("Windows", p["windows"]), ("active", p["bootable"])) if on]
        click.echo(f"  partition {p['number']}: {p['fs']}, {p['identity']}" + (f" [{', '.join(roles)}]" if roles else ""))
    click.echo(f"store: {report.store or 'none found'}")
    for o in report.objects:
        if not o["elements"]:
            continue
        name = o["alias"] or "{" + o["guid"] + "}"
        click.echo(f"{name}  {o['type']}" + (f"  {o['description']!r}" if o["description"] else ""))
        for e in o["elements"]:
            for d in e["devices"]:
                where = f"→ partition {d['partition']}" if d["resolves"] else "→ points nowhere"
                label = f"{e['name']} ({e['code']})" if d["depth"] == 0 else ""
                click.echo(f"    {label:<26}{'  ' * d['depth']}{d['text']}  {where}"
                           + (f"  ({d['note']})" if d.get("note") else ""))
    for x in report.letters:
        where = f"→ partition {x['partition']}" if x["resolves"] else (
            "(not a partition)" if x["kind"] == "other" else "→ points nowhere")
        click.echo(f"  [Windows on {x['windows']}] {x['name']} = {x['value']}  {where}")
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo("every device and drive letter resolves" if report.all_resolve
               else "some devices or drive letters point nowhere: `rescue bcd repair` fixes them")
    return 0
