"""`rescue bcd show|repair|rebuild DISK`: the Windows boot store (BCD) and drive letters of a disk."""

from __future__ import annotations

import click

from core.repair import rebuild_disk_bcd, repair_disk, show_disk

from .bootreport import print_show, run_repair


@click.group("bcd")
def command() -> None:
    """Show, repair or rebuild the Windows boot store (BCD) of a disk."""


@command.command("show")
@click.argument("disk")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def show(disk: str, as_json: bool) -> int:
    """Every boot entry, its devices decoded, and which partition each points to (or that it points nowhere)."""
    return print_show(show_disk(disk), as_json)


@command.command("repair")
@click.argument("disk")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def repair(disk: str, yes: bool, dry_run: bool, as_json: bool) -> int:
    """Point every BCD device and drive letter at the partitions of DISK as they are now."""
    return run_repair(disk, "BCD store and drive letters", yes, dry_run, as_json,
                      lambda dry: repair_disk(disk, dry_run=dry, boot_records=False))


@command.command("rebuild")
@click.argument("disk")
@click.option("--windows", "windows", type=int, default=None,
              help="Partition number of the Windows to boot (needed when there are several).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def rebuild(disk: str, windows: int | None, yes: bool, dry_run: bool, as_json: bool) -> int:
    """Write a fresh store from the Windows' BCD-Template, like bcdboot (the old store is kept as a copy)."""
    return run_repair(disk, "BCD store", yes, dry_run, as_json,
                      lambda dry: rebuild_disk_bcd(disk, dry_run=dry, windows=windows))
