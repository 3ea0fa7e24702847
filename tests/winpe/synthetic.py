"""Synthetic WinPE bases for the tests: no Microsoft base exists on these machines (its licence forbids
shipping one), so the tests make trees laid out as WinPE's and as the ADK's ``copype amd64`` folder,
captured with ``wimcapture --boot``, with the version and architecture set in the WIM's XML as a real
WinPE's are (``wiminfo --image-property WINDOWS/...``; wimlib reads them from the SOFTWARE hive of a
real tree, which a synthetic one does not have).

The boot files are stand-ins of the right names and shapes (``efisys.bin`` a small FAT image as the
real one is; the others random bytes): the build only copies them and points El Torito at them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "WIMLIB_IMAGEX_IGNORE_CASE": "1"}
PE_NAME = "Microsoft Windows PE (x64)"
SETUP_NAME = "Microsoft Windows Setup (x64)"
# The other files of the synthetic image: their presence after the build proves nothing was dropped.
OTHER_FILES = ("Windows/System32/wpeinit.exe", "Windows/System32/wpeutil.exe", "Windows/System32/drvload.exe",
               "Windows/System32/cmd.exe", "Windows/System32/winpeshl.exe", "Windows/System32/config/SYSTEM",
               "Windows/System32/Drivers/storahci.sys", "Windows/Fonts/segoeui.ttf",
               "Windows/System32/en-US/cmd.exe.mui", "Program Files/readme.txt")


def system32_dlls() -> list[str]:
    """The DLL names of builder/winpe-system32.txt when the Windows build has declared it, else the few a
    mingw-built stand-in imports; API-set patterns are not files."""
    listed = ROOT / "builder" / "winpe-system32.txt"
    if listed.exists():
        names = [n.strip() for n in listed.read_text().splitlines()]
        return [n for n in names if n and not n.startswith("#") and "*" not in n]
    return ["ntdll.dll", "kernel32.dll", "kernelbase.dll", "msvcrt.dll", "ucrtbase.dll", "advapi32.dll",
            "user32.dll", "ws2_32.dll", "bcrypt.dll", "bcryptprimitives.dll", "version.dll"]


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=False, timeout=300)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


def image_tree(root: Path, seed: int, setup: bool = False) -> Path:
    """A small WinPE-like tree: System32 with the DLL names WinPE 10 has and the stock startnet.cmd."""
    sys32 = root / "Windows" / "System32"
    sys32.mkdir(parents=True)
    for i, name in enumerate(system32_dlls()):
        (sys32 / name).write_bytes(b"MZ" + bytes([seed, i % 256]) * 64)
    for rel in OTHER_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode() + bytes([seed]))
    (sys32 / "startnet.cmd").write_bytes(b"wpeinit\r\n")
    if setup:
        (sys32 / "winpeshl.ini").write_bytes(b"[LaunchApps]\r\n%SYSTEMDRIVE%\\sources\\setup.exe\r\n")
        (root / "sources").mkdir()
        (root / "sources" / "setup.exe").write_bytes(b"MZ setup")
    return root


def set_version(wim: Path, index: int, major: int, minor: int, arch: int) -> None:
    run("wiminfo", str(wim), str(index), "--image-property", f"WINDOWS/VERSION/MAJOR={major}",
        "--image-property", f"WINDOWS/VERSION/MINOR={minor}", "--image-property", "WINDOWS/VERSION/BUILD=19041",
        "--image-property", f"WINDOWS/ARCH={arch}")


def boot_wim(work: Path, out: Path, major: int = 10, minor: int = 0, arch: int = 9,
             setup_index: bool = False) -> Path:
    """A boot.wim: one WinPE image, or (``setup_index``) an install ISO's two (PE, then Setup)."""
    run("wimcapture", str(image_tree(work / "pe", 1)), str(out), PE_NAME, "--boot")
    set_version(out, 1, major, minor, arch)
    if setup_index:
        run("wimappend", str(image_tree(work / "setup", 2, setup=True)), str(out), SETUP_NAME, "--boot")
        set_version(out, 2, major, minor, arch)
    return out


def media_files(media: Path, iso_layout: bool) -> None:
    """The boot files of a WinPE medium, in the ADK's spelling (install ISOs use lower case)."""
    names = ["bootmgr", "bootmgr.efi", "Boot/BCD", "Boot/boot.sdi", "EFI/Boot/bootx64.efi",
             "EFI/Microsoft/Boot/BCD", "EFI/Microsoft/Boot/Fonts/wgl4_boot.ttf", "Boot/Fonts/wgl4_boot.ttf"]
    if iso_layout:
        names = [n.lower() for n in names]
    for i, rel in enumerate(names):
        (media / rel).parent.mkdir(parents=True, exist_ok=True)
        (media / rel).write_bytes(os.urandom(3000 + 512 * i))


def el_torito_images(into: Path, efisys_rel: str, etfs_rel: str) -> None:
    (into / etfs_rel).parent.mkdir(parents=True, exist_ok=True)
    (into / etfs_rel).write_bytes(os.urandom(4096))  # etfsboot.com is 4 KiB: -boot-load-size 8 sectors
    (into / efisys_rel).parent.mkdir(parents=True, exist_ok=True)
    run("mkfs.vfat", "-C", "-n", "EFISECTOR", str(into / efisys_rel), "1440")


def copype(work: Path, major: int = 10, minor: int = 0, arch: int = 9) -> Path:
    """A folder as ``copype amd64 DIR`` makes it: media/ (boot files, sources/boot.wim) and fwfiles/."""
    d = work / "copype"
    (d / "media" / "sources").mkdir(parents=True)
    (d / "mount").mkdir()
    media_files(d / "media", iso_layout=False)
    boot_wim(work / "trees", d / "media" / "sources" / "boot.wim", major, minor, arch)
    el_torito_images(d / "fwfiles", "efisys.bin", "etfsboot.com")
    return d


def install_iso(work: Path, out: Path) -> Path:
    """An install-ISO-like image (ISO 9660 + Joliet; Microsoft's are UDF, which 7-Zip reads the same way):
    boot files, a two-index sources/boot.wim and an install.wim the build must not extract."""
    tree = work / "isotree"
    (tree / "sources").mkdir(parents=True)
    media_files(tree, iso_layout=True)
    el_torito_images(tree, "efi/microsoft/boot/efisys.bin", "boot/etfsboot.com")
    boot_wim(work / "trees", tree / "sources" / "boot.wim", setup_index=True)
    (tree / "sources" / "install.wim").write_bytes(b"not for the build")
    run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-joliet-long", "-o", str(out), str(tree))
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
