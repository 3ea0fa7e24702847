"""`rescue restore FOLDER TARGET`: put an image back onto a disk, after showing the plan."""

from __future__ import annotations

import click

from core.engine.restore import RestorePlan, execute_restore, plan_restore

from ..context import plan_then_write, running, scratch_check, with_password
from ..output import human, report_warnings, say, show_layout, show_plan_warnings
from ..remote import remote_folder
from .adapt import adapt_options, adapt_request


def show_plan(plan: RestorePlan) -> None:
    say(f"Restore image {plan.image_id} onto {plan.target_description}", err=True)
    click.echo(f"  partition table: {plan.scheme}, sector size {plan.sector_size}, "
               f"uses {human(plan.required_size)} of {human(plan.target_size)}", err=True)
    show_layout(plan.partitions)
    click.echo(f"  data {human(plan.data_bytes)}, zero-filled {human(plan.zero_bytes)}", err=True)
    show_plan_warnings(plan.warnings)
    if plan.adapt:
        click.echo(f"  then: adapt the Windows to controller {plan.adapt.controller.describe()}", err=True)


@click.command("restore")
@click.argument("folder")
@click.argument("target")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD; asked on a terminal "
                   "otherwise).")
@click.option("--grow", type=int, default=None, help="Partition number to grow or shrink to fit the target "
              "(default: the Windows partition).")
@click.option("--keep-layout", is_flag=True, help="Keep every partition at its original offset and size.")
@click.option("--scratch", type=click.Path(file_okay=False), default=None,
              help="Folder for the scratch file of a shrink (default: the backup folder); it needs room for "
                   "the used data beyond the partition's new end.")
@click.option("--allow-ram", is_flag=True, help="Allow the scratch folder of a shrink on a RAM filesystem.")
@adapt_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (the target is overwritten).")
@click.option("--dry-run", is_flag=True, help="Check everything and show the plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan/result as JSON.")
@remote_folder()
def command(folder: str, target: str, image_id: str | None, password_file: str | None, grow: int | None,
            keep_layout: bool, scratch: str | None, allow_ram: bool, adapt: bool, adapt_controller: str | None,
            adapt_drivers: str | None, yes: bool, dry_run: bool, as_json: bool) -> int:
    """Restore an image from FOLDER onto TARGET (a disk, or a disk-image file), overwriting it.

    The target may be larger or smaller than the source: small system partitions keep their sizes,
    every start is aligned to 1 MiB, and the Windows partition grows or shrinks to fill (NTFS is
    resized with ntfsresize). Everything written is read back and compared before the partition table
    is written last; the plan is shown before anything is written.
    """
    request = adapt_request(target, adapt, adapt_controller, adapt_drivers)  # before the plan holds the disk
    with running(not as_json) as (progress, _):
        plan = with_password(password_file, lambda pw: plan_restore(folder, image_id, target, pw, progress,
                                                                    grow=grow, keep_layout=keep_layout,
                                                                    scratch=scratch))
        plan.adapt = request
        # the scratch folder defaults to the backup folder (as plan_restore has it)
        result = plan_then_write(plan, show_plan, execute_restore, progress, as_json=as_json, dry_run=dry_run,
                                 yes=yes, check=scratch_check(scratch or folder, allow_ram))
    if result is None:
        return 0
    if not as_json:
        say(f"restored image {result.image_id} onto {result.target}: {human(result.written_bytes)} "
            f"written and {human(result.verified_bytes)} read back and verified in {result.seconds:.1f} s")
    return report_warnings(result.warnings, show=not as_json)
