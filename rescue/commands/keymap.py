"""`rescue keymap [LAYOUT]`: the console's keyboard layout (list them, or load one; Linux and WinPE)."""

from __future__ import annotations

import click

from rescue import keymap


@click.command("keymap")
@click.argument("layout", required=False)
def command(layout: str | None) -> int:
    """Set the keyboard layout of the console (the rescue media's, or WinPE's): `rescue keymap de`.

    Without LAYOUT: the layouts by short name, and the one in use. Any other keymap name loadkeys
    knows works too on Linux (e.g. de-latin1, fr_CH); on WinPE (through wpeutil) a layout id such as
    0407:00010407 does. Type passwords only after choosing the layout: a
    password typed on the wrong layout is not the one you meant. A serial line or SSH session is not
    affected: its keyboard is the other end's.
    """
    if layout is not None:
        click.echo(f"Keyboard layout: {keymap.load(layout)}")
        return 0
    names = list(keymap.LAYOUTS)
    half = (len(names) + 1) // 2
    cells = [f"{n:<6} {keymap.LAYOUTS[n][1]}" for n in names]
    for left, right in zip(cells[:half], [*cells[half:], ""]):
        click.echo(f"  {left:<36}{right}".rstrip())
    click.echo(f"In use: {keymap.describe(keymap.current())}.  Choose one: rescue keymap NAME")
    why = keymap.supported()
    if why is not None:
        click.echo(f"Not possible here: {why}")
    return 0
