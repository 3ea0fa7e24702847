"""`rescue extract FOLDER PATH --to DIR`: copy a file or folder out of an image."""

from __future__ import annotations

import click

from core.errors import IntegrityError
from rescue.mount.extract import extract

from ..context import running, with_password
from ..output import emit_json, human
from ..remote import remote_folder


@click.command("extract")
@click.argument("folder")
@click.argument("path")
@click.option("--to", "to", required=True, metavar="DIR", help="Folder to copy into (created if missing).")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--partition", type=int, default=None,
              help="Partition number (default: the Windows partition).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD; asked on a terminal "
                   "otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@remote_folder()
def command(folder: str, path: str, to: str, image_id: str | None, partition: int | None,
            password_file: str | None, as_json: bool) -> int:
    """Copy PATH (relative to the partition's root, \\ or / separators) into DIR, keeping timestamps.

    Never writes outside DIR; links are kept only when they point inside what is copied. Files that
    cannot be read (a damaged block) are listed and make the exit code 20."""
    with running(not as_json) as (progress, _):
        result = with_password(password_file,
                               lambda pw: extract(folder, image_id, pw, path, to, partition, progress))
    if as_json:
        emit_json(result.as_json())
    else:
        click.echo(f"image {result.image_id} partition {result.partition}: {result.files} files, "
                   f"{result.dirs} folders, {result.links} links, {human(result.bytes)} copied to {result.target}")
    for p, reason in result.skipped:
        click.echo(f"rescue: skipped {p}: {reason}", err=True)
    for p, reason in result.failed:
        click.echo(f"rescue: could not read {p}: {reason}", err=True)
    if result.failed:
        where = f" (reasons in {result.log})" if result.log else ""
        raise IntegrityError(detail=f"{len(result.failed)} file(s) of image {result.image_id} could not be read"
                                    f"{where}; everything else was copied")
    return 0
