"""`rescue umount MOUNTPOINT`: undo `rescue mount` (also a stale one); harmless when not mounted."""

from __future__ import annotations

import click

from rescue.mount.stack import canonical, teardown


@click.command("umount")
@click.argument("mountpoint")
@click.option("--lazy", is_flag=True,
              help="Detach busy mounts anyway; they go away when their last user closes them.")
def command(mountpoint: str, lazy: bool) -> int:
    """Unmount an image mounted with `rescue mount`: the filesystems, loop devices and the server."""
    if teardown(mountpoint, lazy=lazy):
        click.echo(f"{canonical(mountpoint)} unmounted")
    else:
        click.echo(f"{canonical(mountpoint)} was not mounted")
    return 0
