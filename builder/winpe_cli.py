"""``rescue-build winpe``: WinPE rescue media from a base the user supplies (see builder/winpe.py).

    rescue-build winpe (--adk-media DIR | --windows-iso ISO | --boot-wim FILE --media DIR)
                       [--rescue-dir DIR] (--out ISO | --usb DEV [--yes]) [--drivers DIR] [--run-script F]
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from builder import winpe, winpe_base, winpe_usb
from builder.errors import BuildError
from builder.host import require
from builder.linux_live import default_work
from builder.windows import build_windows

ROOT = Path(__file__).resolve().parent.parent
_dir = click.Path(file_okay=False, exists=True, path_type=Path)
_file = click.Path(dir_okay=False, exists=True, path_type=Path)


def _base(adk_media: Path | None, windows_iso: Path | None, boot_wim: Path | None, media: Path | None,
          work: Path) -> winpe_base.Base:
    chosen = [x for x in (adk_media, windows_iso, boot_wim) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("name one base: --adk-media DIR, --windows-iso ISO, "
                               "or --boot-wim FILE --media DIR")
    if (boot_wim is None) != (media is None):
        raise click.UsageError("--boot-wim and --media go together")
    if adk_media is not None:
        return winpe_base.from_adk(adk_media.resolve())
    if windows_iso is not None:
        return winpe_base.from_iso(windows_iso.resolve(), work / "iso-base")
    assert boot_wim is not None and media is not None
    return winpe_base.from_media(boot_wim.resolve(), media.resolve())


def _rescue_folder(rescue_dir: Path | None, work: Path) -> Path:
    """The frozen rescue.exe folder: the one given, else the Windows build's (cached by its sources)."""
    if rescue_dir is not None:
        return rescue_dir.resolve()
    return build_windows(work / "winpe" / "rescue-exe", work).folder


@click.command("winpe")
@click.option("--adk-media", type=_dir,
              help="A folder made by the ADK's `copype amd64 DIR` (media/, fwfiles/).")
@click.option("--windows-iso", type=_file, help="A Windows 10/11 install ISO (its sources/boot.wim).")
@click.option("--boot-wim", type=_file, help="A WinPE boot.wim; with --media, the folder of its boot files.")
@click.option("--media", type=_dir,
              help="Boot files for --boot-wim (bootmgr, boot/, efi/, etfsboot.com, efisys.bin).")
@click.option("--index", type=click.IntRange(1), default=None,
              help="Image of boot.wim to use (default: its WinPE image, else its Setup image).")
@click.option("--rescue-dir", type=_dir, help="The rescue.exe folder `rescue-build windows` made "
              "(default: build it).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the BIOS+UEFI ISO here, with NAME.boot.wim (for PXE) and NAME.manifest.json "
                   "beside.")
@click.option("--usb", metavar="DEV", help="Write a bootable stick (MBR, one FAT32 partition; BIOS and UEFI) "
              "onto this whole disk, after showing the plan. Everything on it is lost.")
@click.option("--yes", is_flag=True, help="With --usb: do not ask for the disk's name to be typed back.")
@click.option("--drivers", type=_dir, help="Drivers (.inf and their files) to load at boot with drvload.")
@click.option("--run-script", type=_file, help="Put this file on the medium as rescue-run.cmd: run "
              "unattended at boot from that medium, logged to it, then power off.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work and cache directory, shared with the other builds (the frozen rescue.exe). "
                   "Default: ~/.cache/rescue-build.")
def command(adk_media: Path | None, windows_iso: Path | None, boot_wim: Path | None, media: Path | None,
            index: int | None, rescue_dir: Path | None, out: Path | None, usb: str | None, yes: bool,
            drivers: Path | None, run_script: Path | None, work: Path | None) -> None:
    """WinPE 10/11 media carrying rescue.exe, from a base you supply (Microsoft's licence forbids
    shipping WinPE): the ADK's copype folder, an install ISO, or a boot.wim and its boot files."""
    from rescue.context import confirm_target  # the restore's confirmation: --yes or the typed name

    t0 = time.monotonic()
    if out is None and usb is None:
        raise click.UsageError("name an output: --out ISO and/or --usb DEV")
    if out is not None and not out.resolve().parent.is_dir():
        raise BuildError(detail=f"folder {out.resolve().parent} does not exist")
    require(*winpe.WIM_TOOLS, *(winpe.ISO_TOOLS if out else ()), *(winpe_usb.USB_TOOLS if usb else ()),
            *(("7z",) if windows_iso else ()))
    cache = (work or default_work()).resolve()
    work_dir = cache / "winpe"
    work_dir.mkdir(parents=True, exist_ok=True)
    base = _base(adk_media, windows_iso, boot_wim, media, work_dir)
    # Never the disk the build runs from: its root, the checkout, the work folder and every input count
    # as sources of the write, so a stick holding any of them is refused (core/disk/safety.py).
    inputs = [p for p in (drivers, run_script, rescue_dir, out.resolve().parent if out else None) if p]
    sources = [str(p) for p in ("/", ROOT, work_dir, *base.read_paths(), *inputs)]
    if usb is not None:
        winpe_usb.plan(usb, {}, sources)  # refuse a wrong disk before the build, not after it
    folder = _rescue_folder(rescue_dir, cache)
    built = winpe.assemble(base, index, folder, work_dir, drivers, run_script)
    img = built.manifest["base"]
    click.echo(f"base {img['name']} image {img['index']} ({img['image_name']}, WinPE {img['version']})")
    if out is not None:
        winpe.write_iso(base, built, out.resolve(), work_dir)
        click.echo(f"ISO {out} {out.stat().st_size / (1 << 20):.1f} MiB, "
                   f"with {out.stem}.boot.wim and {out.stem}.manifest.json")
    if usb is not None:
        files = winpe.medium_files(base, built, work_dir)
        files["rescue-pe.manifest.json"] = winpe.write_manifest(built, work_dir / "usb.manifest.json", files,
                                                                usb=usb)
        plan = winpe_usb.plan(usb, files, sources)
        for line in plan.lines():
            click.echo(line, err=True)
        confirm_target(plan.target, plan.target_description, yes)
        winpe_usb.write(plan, work_dir, sources, progress=lambda s: click.echo(s, err=True))
        click.echo(f"USB {usb}: written ({plan.data_bytes / (1 << 20):.1f} MiB)")
    click.echo(f"built in {time.monotonic() - t0:.1f} s")

