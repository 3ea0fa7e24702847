"""`rescue clone SOURCE TARGET`: copy a disk onto another of any size that fits, no image in between."""

from __future__ import annotations

import click

from core.engine.clone import ClonePlan, execute_clone, plan_clone

from ..context import plan_then_write, running, scratch_check
from ..output import human, report_warnings, say, show_layout, show_plan_warnings
from .adapt import adapt_options, adapt_request


def show_plan(plan: ClonePlan) -> None:
    say(f"Clone {plan.source_description}", err=True)
    say(f"   to {plan.target_description}", err=True)
    show_layout(plan.partitions)
    click.echo(f"  data to copy: {human(plan.data_bytes)}", err=True)
    show_plan_warnings(plan.warnings)
    if plan.adapt:
        click.echo(f"  then: adapt the Windows to controller {plan.adapt.controller.describe()}", err=True)


@click.command("clone")
@click.argument("source")
@click.argument("target")
@click.option("--partitions", default="all", show_default=True,
              help="'all', 'system' (boot partitions + Windows) or partition numbers like 1,2.")
@click.option("--grow", type=int, default=None, help="Partition number to grow or shrink to fit the target.")
@click.option("--keep-layout", is_flag=True, help="Keep every partition at its original offset and size.")
@click.option("--scratch", type=click.Path(file_okay=False), default="/var/tmp", show_default=True,
              help="Folder for the scratch file of a shrink (room for the used data beyond the new end).")
@click.option("--allow-ram", is_flag=True, help="Allow the scratch folder of a shrink on a RAM filesystem.")
@adapt_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (the target is overwritten).")
@click.option("--dry-run", is_flag=True, help="Check everything and show the plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan/result as JSON.")
def command(source: str, target: str, partitions: str, grow: int | None, keep_layout: bool, scratch: str,
            allow_ram: bool, adapt: bool, adapt_controller: str | None, adapt_drivers: str | None, yes: bool,
            dry_run: bool, as_json: bool) -> int:
    """Clone SOURCE onto TARGET (disks or disk-image files): used blocks only, partitions laid out to fit,
    NTFS resized, everything read back and compared, the partition table written last."""
    request = adapt_request(target, adapt, adapt_controller, adapt_drivers)  # before the plan holds the disk
    with running(not as_json) as (progress, _):
        plan = plan_clone(source, target, progress, partitions=partitions, grow=grow, keep_layout=keep_layout,
                          scratch=scratch)
        plan.adapt = request
        result = plan_then_write(plan, show_plan, execute_clone, progress, as_json=as_json, dry_run=dry_run,
                                 yes=yes, check=scratch_check(scratch, allow_ram))
    if result is None:
        return 0
    if not as_json:
        say(f"cloned {result.source} onto {result.target}: {human(result.written_bytes)} written and "
            f"{human(result.verified_bytes)} read back and verified in {result.seconds:.1f} s")
    return report_warnings(plan.warnings + result.boot_problems, show=not as_json)
