"""`rescue restore FOLDER TARGET`: put an image back onto a disk, after showing the plan."""

from __future__ import annotations

import click

from core.engine.restore import RestorePlan, execute_restore, plan_restore

from ..context import confirm_target, password_source, running
from ..output import emit_json, human


def show_plan(plan: RestorePlan) -> None:
    click.echo(f"Restore image {plan.image_id} onto {plan.target_description}", err=True)
    click.echo(f"  partition table: {plan.scheme}, sector size {plan.sector_size}, "
               f"needs {human(plan.required_size)} of {human(plan.target_size)}", err=True)
    for p in plan.partitions:
        click.echo(f"  partition {p['number']}: start {p['start']}, size {human(p['size'])}, {p['role']}, "
                   f"{p['fs'] or 'raw'}{' ' + repr(p['label']) if p.get('label') else ''}", err=True)
    click.echo(f"  data {human(plan.data_bytes)}, zero-filled {human(plan.zero_bytes)}", err=True)
    for w in plan.warnings:
        click.echo(f"  warning: {w}", err=True)


@click.command("restore")
@click.argument("folder")
@click.argument("target")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (the target is overwritten).")
@click.option("--dry-run", is_flag=True, help="Check everything and show the plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan/result as JSON.")
def command(folder: str, target: str, image_id: str | None, password_file: str | None, yes: bool, dry_run: bool,
            as_json: bool) -> int:
    """Restore an image from FOLDER onto TARGET (a disk, or a disk-image file), overwriting it."""
    with running(not as_json) as (progress, _):
        plan = plan_restore(folder, image_id, target, password_source(password_file), progress)
        try:
            if not as_json:
                show_plan(plan)
            if dry_run:
                if as_json:
                    emit_json({"dry_run": True, "plan": plan.as_json()})
                else:
                    click.echo("dry run: nothing was written")
                return 0
            confirm_target(plan.target, plan.target_description, yes)
            result = execute_restore(plan, progress)
        finally:
            plan.close()
    if as_json:
        emit_json({"dry_run": False, "plan": plan.as_json(), "result": result.as_json()})
    else:
        click.echo(f"restored image {result.image_id} onto {result.target}: {human(result.written_bytes)} "
                   f"written in {result.seconds:.1f} s")
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
    return 100 if result.unreadable else 0
