"""`rescue adapt DISK`: fit the Windows on DISK to a disk controller (storage drivers started, drivers added)."""

from __future__ import annotations

import os
from typing import Any, Callable

import click

from core.disk.controller import resolve_controller
from core.errors import BootRepairWarning, UsageError
from core.platform.ntfs import require_ntfs_files
from core.repair.adapt_disk import AdaptReport, AdaptRequest, adapt_disk
from core.repair.adapt_table import KINDS

from ..output import emit_json, report_warnings
from .bootreport import confirm


def print_adapt(report: AdaptReport, as_json: bool, *, preview: bool = False) -> int:
    """Every change (hive, key, value, old → new), the driver files, backups, notes and problems."""
    if as_json:
        emit_json(report.as_json())
        return adapt_exit_code(report)
    if preview:
        click.echo("plan (nothing written yet):")
    c = report.controller
    ids = f"; ids {', '.join(c['ids'][:2])}" if c.get("ids") else ""
    click.echo(f"disk {report.disk}: controller {c['kind']} ({c['source']}"
               + (f", PCI {c['pci_address']}" if c.get("pci_address") else "") + f"{ids})")
    if report.windows:
        w = report.windows
        version = f" ({w['version']})" if w.get("version") else ""
        click.echo(f"Windows on partition {report.windows_partition}: Windows {w['family']}{version} "
                   f"{w['arch'] or '?'}, control sets {', '.join(w['control_sets'])}")
    if report.driver:
        d = report.driver
        click.echo(f"driver: {d['description']} ({d['hardware_id']}) from {d['inf']}, services "
                   f"{', '.join(d['services'])}"
                   + (f", with sections of {', '.join(d['included'])}" if d.get("included") else ""))
    verb = "would" if report.dry_run else "did"
    for f in report.files:
        what = {"copy": "copy", "replace": "replace (older there)", "keep": "keep the file there"}[f.action]
        versions = f" (there {f.old_version or 'none'}, new {f.new_version or 'none'})" \
            if f.action != "copy" and (f.old_version or f.new_version) else ""
        click.echo(f"  {verb} {what}: \\Windows\\System32\\drivers\\{f.name} from {f.source}{versions}")
    for ch in report.changes:
        old = "(absent)" if ch["old"] is None else repr(ch["old"])
        click.echo(f"  {ch['hive']}: {ch['key']} {ch['value']} ({ch['type']}): {old} → {ch['new']!r}")
    if not report.changes and not report.files and not report.problems:
        click.echo("nothing to change: this Windows already starts the drivers for this controller")
    for label, lines in (("backup kept", report.backups), ("note", report.notes), ("problem", report.problems)):
        for line in lines:
            click.echo(f"{label}: {line}", err=label == "problem")
    if report.dry_run and not preview:
        click.echo("dry run: nothing was written")
    return adapt_exit_code(report)


def adapt_exit_code(report: AdaptReport) -> int:
    return report_warnings((BootRepairWarning(detail=p) for p in report.problems), show=False)


@click.command("adapt")
@click.argument("disk")
@click.option("--controller", type=click.Choice(list(KINDS)), default=None,
              help="The disk controller Windows will start from (default: the one DISK hangs off, detected; "
                   "required for a disk file).")
@click.option("--drivers", type=click.Path(file_okay=False), default=None,
              help="Folder with a driver (.inf, .sys, .cat) for the controller, copied and started at boot "
                   "(with a copy of any Windows INF its INF includes). Windows 8 and later also need it in "
                   "their driver store, which adapt checks and does not write.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(disk: str, controller: str | None, drivers: str | None, yes: bool, dry_run: bool, as_json: bool) -> int:
    """Make the Windows on DISK start from its disk controller: the inbox storage drivers for it set to
    start at boot (every control set), Windows 7's CriticalDeviceDatabase entries for it, and a driver
    from --drivers installed. On Windows 8 and later, a controller no driver in Windows' driver store
    serves is reported (exit 102). The plan is shown first; every change is printed (hive, key, value,
    old → new) and a copy of the SYSTEM hive is kept beside it. On Windows (WinPE) DISK is
    \\\\.\\PhysicalDriveN and the files are edited through the volume Windows mounted on the partition."""
    require_ntfs_files(disk, "rescue adapt (editing the Windows' SYSTEM hive)")
    ctl = resolve_controller(disk, controller)
    plan = adapt_disk(disk, ctl, drivers=drivers, dry_run=True)
    if dry_run:
        return print_adapt(plan, as_json)
    if not as_json:
        print_adapt(plan, False, preview=True)
    if not plan.changes and not any(f.action != "keep" for f in plan.files):
        if as_json:
            emit_json(plan.as_json())
        return adapt_exit_code(plan)
    confirm(disk, "SYSTEM hive and storage drivers", yes, dry_run)
    return print_adapt(adapt_disk(disk, ctl, drivers=drivers, dry_run=False), as_json)


def adapt_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--adapt [--controller K] [--drivers DIR]`` of restore and clone."""
    f = click.option("--drivers", "adapt_drivers", type=click.Path(file_okay=False), default=None,
                     help="With --adapt: folder with a driver (.inf, .sys, .cat) for the controller.")(f)
    f = click.option("--controller", "adapt_controller", type=click.Choice(list(KINDS)), default=None,
                     help="With --adapt: the controller (default: detected; required for a disk file).")(f)
    return click.option("--adapt", is_flag=True,
                        help="Last step: fit the Windows to the target's disk controller, as `rescue adapt`.")(f)


def adapt_request(target: str, adapt: bool, controller: str | None, drivers: str | None) -> AdaptRequest | None:
    """What --adapt asks for; the controller is resolved now, so a missing one stops before any write."""
    if not adapt:
        if controller or drivers:
            raise UsageError(detail="--controller and --drivers belong to --adapt")
        return None
    if drivers is not None and not os.path.isdir(drivers):
        raise UsageError(detail=f"--drivers {drivers}: not a folder")
    require_ntfs_files(target, "--adapt (editing the restored Windows' SYSTEM hive)")
    return AdaptRequest(resolve_controller(target, controller), drivers)
