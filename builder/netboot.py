"""The network-boot tree that `rescue serve --boot DIR` serves by TFTP: our kernel and initramfs, and the
boot loaders that bring a PC to them, all from Debian packages.

    DIR/vmlinuz, DIR/initrd.img   the rescue system (`rescue-build linux-live`)
    DIR/undionly.kpxe             BIOS PCs: iPXE over the card's own PXE stack (Debian's ipxe package);
                                  it then runs DIR/boot.ipxe, which the server writes per session
    DIR/shimx64.efi               UEFI PCs: Debian's shim, signed by Microsoft's UEFI CA (shim-signed), so
                                  Secure Boot needs no key enrolled; it loads
    DIR/grubx64.efi               Debian's signed GRUB network image (grub-efi-amd64-signed's
                                  grubnetx64.efi.signed), which reads grub/grub.cfg over TFTP (the server
                                  writes it per session) and loads Debian's signed kernel through shim

Nothing here is per session: the session address goes into boot.ipxe and grub/grub.cfg when `rescue
serve` starts (`core.multicast.boot`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from builder import debs
from builder.errors import BuildError

PACKAGES = ("shim-signed", "grub-efi-amd64-signed", "ipxe")


def build_tree(out: Path, kernel: Path, initrd: Path, cache: Path) -> Path:
    """Fill ``out`` (created if needed) and return it; ``cache`` holds the downloaded packages."""
    pkgs = debs.unpack_all(list(PACKAGES), cache)
    files = {
        "vmlinuz": kernel,
        "initrd.img": initrd,
        "undionly.kpxe": pkgs["ipxe"] / "usr/lib/ipxe/undionly.kpxe",
        "shimx64.efi": pkgs["shim-signed"] / "usr/lib/shim/shimx64.efi.signed",
        "grubx64.efi": pkgs["grub-efi-amd64-signed"] / "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        if not src.is_file():
            raise BuildError(detail=f"{src} is missing (its Debian package changed its layout?)")
        dest = out / name
        tmp = out / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return out
