"""The ``rescue-build`` command: build the rescue media.

    rescue-build linux-live --out rescue.iso [--work DIR] [--append ARGS] [--timeout S] [--run-script F]
    rescue-build netboot --out DIR [--work DIR]
    rescue-build windows --out DIR [--work DIR]
    rescue-build winpe (--adk-media DIR | --windows-iso ISO | --boot-wim F --media DIR) (--out ISO | --usb DEV)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from builder.linux_live import DEFAULT_APPEND, build, default_work
from builder.windows import build_windows
from builder.winpe_cli import command as winpe_command
from core.errors import Error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Build bootable rescue media with the frozen `rescue` CLI."""


@cli.command("linux-live")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the hybrid ISO (BIOS+UEFI, CD and USB) here. Without it: kernel and initramfs only.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work and cache directory (downloads, frozen CLI). Default: ~/.cache/rescue-build.")
@click.option("--append", default=DEFAULT_APPEND, show_default=True,
              help="Kernel command line of every boot menu entry (e.g. add rescue.run=...).")
@click.option("--timeout", type=click.IntRange(0, 600), default=10, show_default=True,
              help="Boot menu timeout in seconds.")
@click.option("--run-script", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Put this file on the medium as rescue-run.sh: run unattended at boot, then power off.")
def linux_live(out: Path | None, work: Path | None, append: str, timeout: int, run_script: Path | None) -> None:
    """Debian kernel + initramfs (busybox, frozen rescue, ntfs-3g, disk tools, drivers) and ISO."""
    t0 = time.monotonic()
    work_dir = work or default_work()
    result = build(out.resolve() if out else None, work_dir.resolve(), append, timeout, run_script)
    for line in result.log:
        click.echo(line)
    click.echo(f"kernel {result.kernel}\ninitramfs {result.initrd}")
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    click.echo(f"built in {time.monotonic() - t0:.1f} s ({times})")


@cli.command("netboot")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The network-boot tree for rescue serve --boot (kernel, initramfs, iPXE, shim, GRUB).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work and cache directory (downloads, frozen CLI). Default: ~/.cache/rescue-build.")
def netboot(out: Path, work: Path | None) -> None:
    """The kernel and initramfs of linux-live, with the boot loaders that PXE-boot them (BIOS and UEFI)."""
    from builder.netboot import build_tree

    t0 = time.monotonic()
    work_dir = (work or default_work()).resolve()
    result = build(None, work_dir)
    for line in result.log:
        click.echo(line)
    tree = build_tree(out.resolve(), result.kernel, result.initrd, work_dir / "debs")
    click.echo(f"network-boot tree {tree} in {time.monotonic() - t0:.1f} s")


@cli.command("windows")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Put the folder-mode rescue.exe here (DIR/rescue.exe, DIR/_internal/); "
                   "an earlier build there is replaced.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work and cache directory (downloads, Wine prefix, frozen folder). Default: ~/.cache/rescue-build.")
def windows(out: Path, work: Path | None) -> None:
    """rescue.exe for WinPE 10/11 (x64), frozen under Wine from pinned inputs and smoke-tested there."""
    t0 = time.monotonic()
    result = build_windows(out.resolve(), (work or default_work()).resolve())
    for line in result.log:
        click.echo(line)
    click.echo(f"rescue.exe {result.exe} ({result.size / (1 << 20):.1f} MiB in the folder, "
               f"{result.dlls} DLL names imported, all found)")
    click.echo(f"built in {time.monotonic() - t0:.1f} s")


# WinPE media (builder/winpe_cli.py): a command module of its own, registered here
cli.add_command(winpe_command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="rescue-build", standalone_mode=False)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(3)
    except click.exceptions.Abort:
        sys.exit(130)
    except Error as e:
        click.echo(f"rescue-build: error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:  # unwritable --out or --work, disk full ...: one line, not a traceback
        click.echo(f"rescue-build: error: {e}", err=True)
        sys.exit(2)
