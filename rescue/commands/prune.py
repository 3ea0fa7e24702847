"""`rescue prune FOLDER --keep-last N ...`: delete restore points a retention policy does not keep."""

from __future__ import annotations

import click

from core.engine.prune import Policy, PruneResult, prune

from ..context import confirm_target
from ..output import emit_json
from ..remote import remote_folder


def show(result: PruneResult) -> None:
    for image_id in result.keep:
        click.echo(f"keep    {image_id}  ({', '.join(result.keep_reasons.get(image_id, []))})", err=True)
    for image_id in result.delete:
        click.echo(f"delete  {image_id}", err=True)


@click.command("prune")
@click.argument("folder")
@click.option("--keep-last", type=click.IntRange(0), default=0, help="Keep the N newest restore points.")
@click.option("--keep-daily", type=click.IntRange(0), default=0, help="Keep the newest point of each of N days.")
@click.option("--keep-weekly", type=click.IntRange(0), default=0, help="Keep the newest point of each of N weeks.")
@click.option("--keep-monthly", type=click.IntRange(0), default=0, help="Keep the newest point of N months.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@remote_folder()
def command(folder: str, keep_last: int, keep_daily: int, keep_weekly: int, keep_monthly: int, dry_run: bool,
            yes: bool, as_json: bool) -> int:
    """Delete the images a retention policy does not keep. Kept points keep every image they depend on;
    unfinished (incomplete) images are deleted too."""
    policy = Policy(keep_last, keep_daily, keep_weekly, keep_monthly)

    def confirm(result: PruneResult) -> None:
        if not as_json:
            show(result)
        confirm_target(folder, f"{len(result.delete)} image(s) in {folder}", yes, verb="delete")

    result = prune(folder, policy, dry_run, confirm)
    if as_json:
        emit_json(result.as_json())
    else:
        if dry_run or not result.delete:
            show(result)
        click.echo("dry run: nothing was deleted" if dry_run else f"deleted {len(result.deleted)} image(s)")
    return 0
