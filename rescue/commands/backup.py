"""`rescue backup SOURCE FOLDER`: a full, incremental or differential image of a disk."""

from __future__ import annotations

import dataclasses
import sys

import click

from core.engine.backup import BackupOptions, backup
from core.errors import SerialChanged, UsageError
from core.platform.console import is_terminal

from ..context import confirm_typed, new_backup_password, refuse_ram, running
from ..output import emit_json, human, report_warnings, say
from ..remote import remote_folder

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = t[:-1] if unit else t
    try:
        value = float(number)
    except ValueError:
        raise UsageError(detail=f"--split: {text!r} is not a size like 4G, 650M or 4700M") from None
    if value <= 0:
        raise UsageError(detail=f"--split: {text!r} must be positive")
    return int(value * _UNITS[unit])


@click.command("backup")
@click.argument("source")
@click.argument("folder")
@click.option("--partitions", default="all", show_default=True,
              help="'all', 'system' (boot partitions + Windows) or partition numbers like 1,2.")
@click.option("--level", type=int, default=1, show_default=True,
              help="zstd compression level (1-19); higher is smaller and slower.")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Encrypt with the password in this file (or set RESCUE_PASSWORD; on a terminal, "
                   "without either, it is asked twice: empty for no encryption).")
@click.option("--split", "split", default=None, help="Cap each volume file, e.g. 4G for FAT32, 650M, 4.7G.")
@click.option("--sector-by-sector", is_flag=True, help="Store every sector, including free space, "
              "pagefile.sys and hiberfil.sys.")
@click.option("--incremental", is_flag=True, help="Store only what changed since the latest image in FOLDER.")
@click.option("--differential", is_flag=True,
              help="Store only what changed since the latest full image in FOLDER.")
@click.option("--allow-ram", is_flag=True,
              help="Allow a backup folder on a RAM filesystem (tmpfs, ramfs: gone at power-off).")
@click.option("--yes", is_flag=True, help="Continue a chain on a disk whose serial differs from the last image's "
              "when its size and partition table are the same (another controller or USB dock).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@remote_folder(create=True, writes=True)
def command(source: str, folder: str, partitions: str, level: int, password_file: str | None, split: str | None,
            sector_by_sector: bool, incremental: bool, differential: bool, allow_ram: bool, yes: bool,
            as_json: bool) -> int:
    """Make an image of SOURCE (a disk, or a file holding a disk image) in FOLDER.

    Full by default; --incremental and --differential store only the blocks that changed and refer
    to the earlier images for the rest (a restore needs those images too).
    """
    if incremental and differential:
        raise UsageError(detail="--incremental and --differential contradict each other: give one of them")
    mode = "incremental" if incremental else "differential" if differential else "full"
    refuse_ram(folder, "backup folder", allow_ram)
    options = BackupOptions(partitions=partitions, level=level, password=new_backup_password(password_file),
                            split=parse_size(split) if split else None, sector_by_sector=sector_by_sector,
                            mode=mode, accept_serial_change=yes)
    with running(not as_json) as (progress, line):
        try:
            result = backup(source, folder, options, progress)
        except SerialChanged as e:
            # nothing was written: asked, then the same backup again with the user's word
            if not is_terminal(sys.stdin):
                raise
            line.finish()
            confirm_typed(source, f"rescue: {e.message}.", "source's name")
            result = backup(source, folder, dataclasses.replace(options, accept_serial_change=True), progress)
    if as_json:
        emit_json(result.as_json())
    else:
        parent = f" on top of {result.parent}" if result.parent else ""
        say(f"{result.kind} image {result.image_id}{parent}: read {human(result.read_bytes)}, "
            f"stored {human(result.data_bytes)} "
            f"of data in {human(result.stored_bytes)} ({len(result.volumes)} volume"
            f"{'s' if len(result.volumes) != 1 else ''}) in {result.seconds:.1f} s")
    return report_warnings(result.warnings, show=not as_json)
