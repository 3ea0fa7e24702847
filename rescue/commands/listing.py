"""`rescue list FOLDER`: the images in a backup folder as chains (a tree), complete or not."""

from __future__ import annotations

import textwrap

import click

from core.engine.repo import ImageEntry, Repository
from core.errors import IncompleteImage, NewerFormat

from ..output import WIDTH, emit_json, fit, human
from ..remote import remote_folder


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
@remote_folder()
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
    rows = []
    for depth, i in _tree(images):
        state, why = "ok" + (", encrypted" if i.encrypted else ""), ""
        if not i.complete:
            if not i.has_manifest or isinstance(i.exception, IncompleteImage):
                state = "INCOMPLETE"
            elif isinstance(i.exception, NewerFormat):
                state = "NEWER FORMAT"  # intact, but written by a later version of this program
            else:
                state = "DAMAGED"
            why = str(i.error)
        name = "  " * depth + ("└ " if depth else "") + i.id
        rows.append((name, i.kind, i.time[:16].replace("T", " "), human(i.bytes) if i.complete else "-", state, why))
    # columns as wide as their widest entry, so a line fits 80 columns; the reason of an unusable image
    # goes on its own lines, wrapped at words
    nw, kw = max(len("ID"), *(len(r[0]) for r in rows)), max(len("KIND"), *(len(r[1]) for r in rows))
    click.echo(f"{'ID':{nw}} {'KIND':{kw}} {'TIME':16} {'SIZE':>9} STATE")
    for name, kind, when, size, state, why in rows:
        click.echo(fit(f"{name:{nw}} {kind:{kw}} {when:16} {size:>9} {state}"))
        if why:
            click.echo(textwrap.fill(why, WIDTH, initial_indent="    ", subsequent_indent="    "))
    return 0
