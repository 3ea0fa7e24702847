"""`rescue merge FOLDER --image ID`: fold a restore point's chain into one new full image."""

from __future__ import annotations

import click

from core.engine.merge import merge

from ..context import refuse_ram, running, with_password
from ..output import emit_json, human
from ..remote import remote_folder
from .backup import parse_size


@click.command("merge")
@click.argument("folder")
@click.option("--image", "image_id", default=None, help="Restore point to fold (default: the latest).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of the encrypted chain (or set RESCUE_PASSWORD).")
@click.option("--level", type=int, default=1, show_default=True, help="zstd level of the new image.")
@click.option("--split", default=None, help="Cap each volume file of the new image, e.g. 4G.")
@click.option("--allow-ram", is_flag=True,
              help="Allow a backup folder on a RAM filesystem (tmpfs, ramfs: gone at power-off).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@remote_folder(writes=True)
def command(folder: str, image_id: str | None, password_file: str | None, level: int, split: str | None,
            allow_ram: bool, as_json: bool) -> int:
    """Write a synthetic full image equal to a restore point, then remove the images of its chain
    that nothing else needs. The new image is committed before anything is removed."""
    refuse_ram(folder, "backup folder", allow_ram)  # the new full image is written there
    with running(not as_json) as (progress, _):
        result = with_password(password_file, lambda pw: merge(folder, image_id, pw, progress, level=level,
                                                               split=parse_size(split) if split else None))
    if as_json:
        emit_json(result.as_json())
        return 0
    click.echo(f"full image {result.image_id} holds the state of {result.merged_from} "
               f"({human(result.stored_bytes)}, {result.seconds:.1f} s)")
    if result.removed:
        click.echo(f"removed {len(result.removed)} image(s) no longer needed: {', '.join(result.removed)}")
    if result.kept:
        click.echo(f"kept {', '.join(result.kept)}: later images depend on them")
    return 0
