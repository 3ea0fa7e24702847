"""`rescue list FOLDER`: the images in a backup folder as chains (a tree), complete or not."""

from __future__ import annotations

import click

from core.engine.repo import ImageEntry, Repository
from core.errors import IncompleteImage, NewerFormat

from ..output import emit_json, human


def _tree(images: list[ImageEntry]) -> list[tuple[int, ImageEntry]]:
    """(depth, image) in display order: each image under its parent, oldest first."""
    ids = {i.id for i in images}
    children: dict[str | None, list[ImageEntry]] = {}
    for i in images:
        children.setdefault(i.parent if i.parent in ids else None, []).append(i)
    out: list[tuple[int, ImageEntry]] = []
    stack = [(0, i) for i in reversed(children.get(None, []))]
    while stack:
        depth, i = stack.pop()
        out.append((depth, i))
        stack.extend((depth + 1, c) for c in reversed(children.get(i.id, [])))
    return out


@click.command("list")
@click.argument("folder")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of images.")
def command(folder: str, as_json: bool) -> int:
    """List the images in FOLDER as chains: each incremental or differential under its parent.
    Incomplete images (unfinished backups) are marked and never restored."""
    images = Repository(folder).list_images()
    if as_json:
        emit_json([i.as_json() for i in images])
        return 0
    if not images:
        click.echo("no images")
        return 0
    click.echo(f"{'ID':32} {'KIND':12} {'TIME':20} {'SIZE':>10}  STATE")
    for depth, i in _tree(images):
        state = "complete" + (", encrypted" if i.encrypted else "")
        if not i.complete:
            if not i.has_manifest or isinstance(i.exception, IncompleteImage):
                label = "INCOMPLETE"
            elif isinstance(i.exception, NewerFormat):
                label = "NEWER FORMAT"  # intact, but written by a later version of this program
            else:
                label = "DAMAGED"
            state = f"{label}: {i.error}"
        name = ("  " * depth + ("└ " if depth else "") + i.id)
        click.echo(f"{name:32} {i.kind:12} {i.time[:19]:20} {human(i.bytes) if i.complete else '-':>10}  {state}")
    return 0
