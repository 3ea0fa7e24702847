"""Build the Linux rescue system: Debian kernel + our initramfs, and optionally the hybrid ISO.

Inputs come from Debian packages (``apt-get download``, never installed: kernel and modules, busybox,
loadkeys and the console keymaps, shim, GRUB, ISOLINUX), the build host (disk tools and their libraries, listed in linux-live/tools.list)
and PyPI (PyInstaller freezes the CLI). Everything downloaded or frozen is cached in the work directory,
so a second build with unchanged inputs only reassembles the initramfs and the ISO.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder import debs, freeze, iso, kmods, rootfs
from builder.cpio import Node, write_initramfs
from builder.errors import BuildError
from builder.host import require
from core import __version__

LIVE = Path(__file__).resolve().parent.parent / "linux-live"
BUILD_TOOLS = ("apt-get", "apt-cache", "dpkg-deb", "depmod", "ldd")
ISO_TOOLS = ("xorriso", "mkfs.vfat", "mcopy", "mmd")
BOOT_PACKAGES = ["isolinux", "syslinux-common", "shim-signed", "shim-helpers-amd64-signed",
                 "grub-efi-amd64-signed"]
NODES = [Node("dev/console", stat.S_IFCHR | 0o600, 5, 1), Node("dev/null", stat.S_IFCHR | 0o666, 1, 3)]
DEFAULT_APPEND = "quiet"


@dataclass
class LiveBuild:
    kernel: Path
    initrd: Path
    kernel_version: str
    iso: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def default_work() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rescue-build"


def build_boot_files(work: Path, result_log: list[str] | None = None) -> LiveBuild:
    """Kernel and initramfs in ``work`` (``work``/vmlinuz, ``work``/initrd.img)."""
    require(*BUILD_TOOLS)
    work.mkdir(parents=True, exist_ok=True)
    log = result_log if result_log is not None else []
    times: dict[str, float] = {}
    t0 = time.monotonic()
    cache = work / "debs"
    kpkg = debs.kernel_package()
    kver = kpkg.name.removeprefix("linux-image-")
    kroot = debs.unpacked(kpkg, cache)
    busybox = debs.unpacked(debs.candidate("busybox-static")[0], cache) / "bin" / "busybox"
    if not busybox.exists():
        raise BuildError(detail=f"busybox-static has no bin/busybox in {busybox.parent}")
    # GPL MBR boot code: restore writes it to a disk whose boot code it does not know
    syslinux = debs.unpacked(debs.candidate("syslinux-common")[0], cache)
    # console keyboard layouts: loadkeys (kbd) and the keymaps it reads (console-data), offline
    kbd = debs.unpacked(debs.candidate("kbd")[0], cache)
    console_data = debs.unpacked(debs.candidate("console-data")[0], cache)
    log.append(f"kernel {kpkg.name} {kpkg.version}")
    times["packages"] = time.monotonic() - t0

    t0 = time.monotonic()
    frozen = freeze.freeze(work, log)
    times["freeze"] = time.monotonic() - t0

    t0 = time.monotonic()
    root = work / "rootfs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    rootfs.skeleton(root)
    n_applets = rootfs.install_busybox(root, busybox)
    tools = rootfs.install_tools(root, rootfs.read_tools(LIVE / "tools.list"))
    frozen_elves = rootfs.install_frozen(root, frozen)
    version = f"{__version__}"
    rootfs.install_live_files(root, LIVE, version)
    shutil.copytree(syslinux / "usr/lib/syslinux/mbr", root / "usr/lib/syslinux/mbr")
    tools.append(rootfs.install_keymaps(root, kbd, console_data))
    rootfs.list_tools(root, tools)
    n_libs = rootfs.copy_libs(root, tools)
    internal = root / "opt/rescue/_internal"
    env = {**os.environ, "LD_LIBRARY_PATH": str(internal)}
    # The bootloader executable loads system libraries (libz, libc) before it points the loader at
    # its own folder; the extension modules find their bundled libraries through that folder.
    n_libs += rootfs.copy_libs(root, [root / "opt/rescue/rescue"])
    n_libs += rootfs.copy_libs(root, frozen_elves, skip_under=root / "opt/rescue", env=env)
    mods = kmods.install_modules(kroot, kver, kmods.read_list(LIVE / "modules.list"), root)
    log.append(f"initramfs: {n_applets} busybox applets, {len(tools)} tools, {n_libs} libraries, "
               f"{len(mods)} kernel modules")
    initrd = work / "initrd.img"
    write_initramfs(root, initrd, NODES)
    kernel = work / "vmlinuz"
    shutil.copyfile(kroot / "boot" / f"vmlinuz-{kver}", kernel)
    times["initramfs"] = time.monotonic() - t0
    log.append(f"initramfs {initrd.stat().st_size / (1 << 20):.1f} MiB, kernel "
               f"{kernel.stat().st_size / (1 << 20):.1f} MiB")
    return LiveBuild(kernel, initrd, kver, seconds=times, log=log)


def build(out: Path | None, work: Path, append: str = DEFAULT_APPEND, timeout: int = 10,
          run_script: Path | None = None) -> LiveBuild:
    """Kernel + initramfs, and with ``out`` the hybrid ISO there. ``timeout``: boot menu seconds;
    ``append``: kernel command line for every menu entry; ``run_script``: put on the medium as
    rescue-run.sh (the init runs it unattended and powers off)."""
    if out is not None:
        require(*ISO_TOOLS)
    if run_script is not None and not run_script.is_file():
        raise BuildError(detail=f"run script {run_script} is not a file")
    result = build_boot_files(work)
    if out is None:
        return result
    t0 = time.monotonic()
    pkgs = debs.unpack_all(BOOT_PACKAGES, work / "debs")
    iso.build_iso(out, work / "iso", result.kernel, result.initrd, iso.BootFiles.from_packages(pkgs),
                  LIVE, __version__, append, timeout, run_script)
    result.iso = out
    result.seconds["iso"] = time.monotonic() - t0
    result.log.append(f"ISO {out} {out.stat().st_size / (1 << 20):.1f} MiB")
    return result
