"""`rescue fix-boot DISK`: the whole offline boot repair of a Windows disk after a restore or clone."""

from __future__ import annotations

import click

from core.repair import repair_disk

from .bootreport import run_repair


@click.command("fix-boot")
@click.argument("disk")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(disk: str, yes: bool, dry_run: bool, as_json: bool) -> int:
    """MBR boot code, active flag, NTFS/FAT hidden sectors (boot sector and backup), then BCD and drive letters."""
    return run_repair(disk, "boot records, BCD store and drive letters", yes, dry_run, as_json,
                      lambda dry: repair_disk(disk, dry_run=dry))
