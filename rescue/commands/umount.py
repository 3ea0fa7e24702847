"""`rescue umount MOUNTPOINT`: undo `rescue mount` (also a stale one); harmless when not mounted."""

from __future__ import annotations

import os

import click

from core.errors import UsageError
from core.remote import release_kept
from rescue.mount.stack import canonical, teardown


@click.command("umount")
@click.argument("mountpoint")
@click.option("--lazy", is_flag=True,
              help="Detach busy mounts anyway; they go away when their last user closes them.")
def command(mountpoint: str, lazy: bool) -> int:
    """Unmount an image mounted with `rescue mount`: the filesystems, loop devices and the server."""
    if not os.path.isdir(mountpoint) and not os.path.islink(mountpoint):
        # a mistyped path must not pass for "nothing was mounted" (a dead mount still lists as a folder)
        raise UsageError(detail=f"{mountpoint} is not a folder: name the mount point given to `rescue mount`")
    done = teardown(mountpoint, lazy=lazy)
    release_kept(mountpoint)  # the sftp:// or s3:// folder `rescue mount` read the image from, if any
    if done:
        click.echo(f"{canonical(mountpoint)} unmounted")
    else:
        click.echo(f"{canonical(mountpoint)} was not mounted")
    return 0
