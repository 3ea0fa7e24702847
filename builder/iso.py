"""The hybrid ISO: one image that boots from CD and, written raw to a USB stick, from disk; BIOS
through ISOLINUX and UEFI through Debian's signed shim and GRUB (so Secure Boot works, the kernel being
Debian's signed one too).

Layout, as Debian's own live images do it (xorriso -as mkisofs):
  /isolinux/      isolinux.bin + menu modules + isolinux.cfg   El Torito BIOS image; isohdpfx MBR for USB
  /boot/grub/     grub.cfg, and efi.img: a FAT image with /EFI/BOOT/BOOTX64.EFI (shim), grubx64.efi
                  (Debian's signed GRUB for CDs) and mmx64.efi (MOK manager); El Torito EFI image, and
                  a GPT/MBR partition on USB (-isohybrid-gpt-basdat)
  /live/          vmlinuz, initrd.img
  /.disk/info     GRUB's embedded config searches for it to find grub.cfg; /.disk/rescue-live marks
                  the medium for the init (it looks for rescue-run.sh there)
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.host import run

VOLUME_ID = "RESCUE_LIVE"
SYSLINUX_MODULES = ("ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32")
MiB = 1 << 20


@dataclass(frozen=True)
class BootFiles:
    """Paths inside the unpacked Debian packages."""

    isolinux_bin: Path  # isolinux: usr/lib/ISOLINUX/isolinux.bin
    isohybrid_mbr: Path  # isolinux: usr/lib/ISOLINUX/isohdpfx.bin
    syslinux_modules: Path  # syslinux-common: usr/lib/syslinux/modules/bios
    shim: Path  # shim-signed: usr/lib/shim/shimx64.efi.signed
    mok_manager: Path  # shim-helpers-amd64-signed: usr/lib/shim/mmx64.efi.signed
    grub_efi: Path  # grub-efi-amd64-signed: usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed

    @classmethod
    def from_packages(cls, pkgs: dict[str, Path]) -> BootFiles:
        return cls(
            isolinux_bin=pkgs["isolinux"] / "usr/lib/ISOLINUX/isolinux.bin",
            isohybrid_mbr=pkgs["isolinux"] / "usr/lib/ISOLINUX/isohdpfx.bin",
            syslinux_modules=pkgs["syslinux-common"] / "usr/lib/syslinux/modules/bios",
            shim=pkgs["shim-signed"] / "usr/lib/shim/shimx64.efi.signed",
            mok_manager=pkgs["shim-helpers-amd64-signed"] / "usr/lib/shim/mmx64.efi.signed",
            grub_efi=pkgs["grub-efi-amd64-signed"] / "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
        )


def render(template: Path, **values: str) -> str:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", value)
    return text


def efi_image(boot: BootFiles, dest: Path) -> None:
    """FAT image holding the UEFI boot chain (shim -> GRUB), made with mkfs.vfat and mtools (no mount)."""
    files = {"BOOTX64.EFI": boot.shim, "grubx64.efi": boot.grub_efi, "mmx64.efi": boot.mok_manager}
    need = sum(p.stat().st_size for p in files.values()) + MiB  # FAT, directories, slack
    size_kib = (need + MiB - 1) // MiB * 1024
    dest.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", "RESCUE_EFI", str(dest), str(size_kib)])
    env = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
    run(["mmd", "-i", str(dest), "::/EFI", "::/EFI/BOOT"], env=env)
    for name, src in files.items():
        run(["mcopy", "-i", str(dest), str(src), f"::/EFI/BOOT/{name}"], env=env)


def build_iso(out: Path, staging: Path, kernel: Path, initrd: Path, boot: BootFiles, live: Path,
              version: str, append: str, timeout: int, run_script: Path | None = None) -> None:
    """Lay out ``staging`` and write the hybrid ISO to ``out``. ``timeout``: boot menu seconds."""
    # A random name for this medium, in its marker file and on the kernel command line of its menus:
    # the init runs a rescue-run.sh only from the medium it was booted from, never from another
    # rescue stick that happens to be plugged in (whose script may restore onto a disk).
    medium_id = secrets.token_hex(8)
    append = f"{append} rescue.medium={medium_id}".strip()
    shutil.rmtree(staging, ignore_errors=True)
    for d in ("isolinux", "boot/grub", "live", ".disk"):
        (staging / d).mkdir(parents=True)
    shutil.copyfile(kernel, staging / "live/vmlinuz")
    shutil.copyfile(initrd, staging / "live/initrd.img")
    shutil.copyfile(boot.isolinux_bin, staging / "isolinux/isolinux.bin")
    for m in SYSLINUX_MODULES:
        shutil.copyfile(boot.syslinux_modules / m, staging / "isolinux" / m)
    # ISOLINUX counts in tenths of a second and treats 0 as "wait forever": at least 1
    (staging / "isolinux/isolinux.cfg").write_text(
        render(live / "isolinux.cfg", timeout=str(max(1, timeout * 10)), append=append, version=version))
    (staging / "boot/grub/grub.cfg").write_text(
        render(live / "grub.cfg", timeout=str(timeout), append=append, version=version))
    efi_image(boot, staging / "boot/grub/efi.img")
    (staging / ".disk/info").write_text(f"Rescue {version}\n")
    (staging / ".disk/rescue-live").write_text(f"{version}\n{medium_id}\n")
    if run_script is not None:
        shutil.copyfile(run_script, staging / "rescue-run.sh")
    tmp = out.with_name(out.name + ".tmp")
    try:
        run(["xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-V", VOLUME_ID, "-o", str(tmp),
             "-isohybrid-mbr", str(boot.isohybrid_mbr),
             "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
             "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
             "-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot", "-isohybrid-gpt-basdat",
             str(staging)])
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
