"""`rescue mount FOLDER MOUNTPOINT`: browse an image read-only (MOUNTPOINT/p1, p2 ...)."""

from __future__ import annotations

import click

from rescue.mount.server import MountResult, mount

from ..context import with_password
from ..output import emit_json, human
from ..remote import remote_folder


@click.command("mount")
@click.argument("folder")
@click.argument("mountpoint")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD; asked on a terminal "
                   "otherwise).")
@click.option("--foreground", is_flag=True, help="Stay in the foreground; Ctrl-C unmounts.")
@click.option("--log", "log_path", default=None,
              help="Log file of read errors (default: /run/rescue/mount-*.log; stderr with --foreground).")
@click.option("--json", "as_json", is_flag=True, help="Print what was mounted as JSON.")
@remote_folder(keep_for="mountpoint")
def command(folder: str, mountpoint: str, image_id: str | None, password_file: str | None, foreground: bool,
            log_path: str | None, as_json: bool) -> int:
    """Mount an image read-only: MOUNTPOINT/pN is partition N's files (NTFS through ntfs-3g, FAT through
    fusefat) or its raw bytes; MOUNTPOINT/.raw holds every partition and the whole disk as files.
    Returns once the mount is usable; `rescue umount MOUNTPOINT` undoes it."""

    def ready(r: MountResult) -> None:
        if as_json:
            emit_json(r.as_json())
            return
        click.echo(f"image {r.image_id} mounted read-only at {r.mountpoint}")
        for p in r.partitions:
            what = "files" if p["browsable"] else "raw bytes (no driver for this filesystem)"
            label = f' "{p["label"]}"' if p["label"] else ""
            click.echo(f"  {r.mountpoint}/{p['name']}: {p['fs'] or 'unknown'}{label}, {human(p['size'])}: {what}")
        click.echo(f"  {r.mountpoint}/.raw: every partition and the whole disk as files")
        if r.log:
            click.echo(f"  read errors are logged to {r.log}")
        click.echo(f"unmount with: rescue umount {r.mountpoint}" + ("  (or Ctrl-C)" if foreground else ""))

    with_password(password_file, lambda pw: mount(folder, image_id, pw, mountpoint, foreground=foreground,
                                                  log_path=log_path, on_ready=ready))
    return 0
