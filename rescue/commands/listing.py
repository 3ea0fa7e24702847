"""`rescue list FOLDER`: the images in a backup folder, complete or not."""

from __future__ import annotations

import click

from core.engine.repo import Repository

from ..output import emit_json, human


@click.command("list")
@click.argument("folder")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of images.")
def command(folder: str, as_json: bool) -> int:
    """List the images in FOLDER (oldest first); incomplete ones are marked and never restored."""
    images = Repository(folder).list_images()
    if as_json:
        emit_json([i.as_json() for i in images])
        return 0
    if not images:
        click.echo("no images")
        return 0
    click.echo(f"{'ID':24} {'KIND':12} {'TIME':26} {'SIZE':>10}  STATE")
    for i in images:
        state = ("complete" + (", encrypted" if i.encrypted else "")) if i.complete else f"INCOMPLETE: {i.error}"
        click.echo(f"{i.id:24} {i.kind:12} {i.time:26} {human(i.bytes) if i.complete else '-':>10}  {state}")
    return 0
