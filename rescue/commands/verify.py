"""`rescue verify FOLDER`: check every block of an image; exit 0 only if all is well."""

from __future__ import annotations

import click

from core.engine.verify import verify

from ..context import running, with_password
from ..output import emit_json, human, say
from ..remote import remote_folder


@click.command("verify")
@click.argument("folder")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD; asked on a terminal "
                   "otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@remote_folder()
def command(folder: str, image_id: str | None, password_file: str | None, as_json: bool) -> int:
    """Verify an image: every volume, every block, authenticated and digest-checked."""
    with running(not as_json) as (progress, _):
        result = with_password(password_file, lambda pw: verify(folder, image_id, pw, progress))
    if as_json:
        emit_json(result.as_json())
    else:
        say(f"image {result.image_id}: OK, {result.chunks} blocks, {human(result.data_bytes)} of data "
            f"verified in {result.seconds:.1f} s")
    return 0
