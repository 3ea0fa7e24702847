"""The WinPE base a user supplies, found and checked: the ADK's ``copype amd64`` folder, a Windows 10/11
install ISO, or a ``boot.wim`` with a folder of boot files.

Microsoft's licence forbids shipping WinPE, so the build only reads what the user has. A base is
located by names matched case-insensitively (Windows media spell them ``Boot/BCD``, ``boot/bcd`` ...):

- copype: ``DIR/media/`` (``bootmgr``, ``bootmgr.efi``, ``Boot/``, ``EFI/``, ``sources/boot.wim``) and
  ``DIR/fwfiles/`` (``etfsboot.com``: El Torito BIOS, ``efisys.bin``: the FAT image of El Torito UEFI).
- install ISO: the same media files at its root, ``boot/etfsboot.com``, ``efi/microsoft/boot/efisys.bin``;
  only those are extracted (7-Zip reads the UDF file system these ISOs use; no mount, no root).

The image is chosen and checked from the WIM's XML: WinPE 10 or later (the frozen Python and the Rust
crypto need Windows 8.1 and 10 APIs) and x64 (the bundle is x64).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.host import TOOL_PACKAGES, require, run

# The WinPE build's tools, beside the Linux build's in the one table that names their packages.
TOOL_PACKAGES.update({"wiminfo": "wimtools", "wimexport": "wimtools", "wimupdate": "wimtools",
                      "wimdir": "wimtools", "wimextract": "wimtools", "7z": "p7zip-full",
                      "syslinux": "syslinux"})

# What the ISO and the stick need from the base, relative to its media root.
MEDIA_FILES = ("bootmgr", "bootmgr.efi", "boot/bcd", "boot/boot.sdi", "efi/boot/bootx64.efi",
               "efi/microsoft/boot/bcd")
ARCH_NAMES = {0: "x86 (32-bit)", 5: "ARM", 6: "Itanium", 9: "x64", 12: "ARM64"}
ARCH_X64 = 9
WIMLIB_ENV = {"WIMLIB_IMAGEX_IGNORE_CASE": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def find_ci(root: Path, rel: str) -> Path | None:
    """``root``/``rel`` with every component matched case-insensitively, or None."""
    here = root
    for part in rel.split("/"):
        if not here.is_dir():
            return None
        exact = here / part
        if exact.exists():
            here = exact
            continue
        match = [c for c in here.iterdir() if c.name.lower() == part.lower()]
        if not match:
            return None
        here = match[0]
    return here


@dataclass
class WimImage:
    index: int
    name: str
    description: str
    major: int | None
    minor: int | None
    build: int | None
    arch: int | None

    @property
    def version(self) -> str:
        return ".".join(str(v) for v in (self.major, self.minor, self.build) if v is not None) or "unknown"


def _int(node: ET.Element | None, path: str) -> int | None:
    text = node.findtext(path) if node is not None else None
    return int(text) if text and text.strip().isdigit() else None


def wim_images(wim: Path, scratch: Path) -> list[WimImage]:
    """The images of a WIM, from its XML (wimlib writes it as UTF-16 to ``scratch``)."""
    require("wiminfo")
    scratch.unlink(missing_ok=True)
    run(["wiminfo", str(wim), f"--extract-xml={scratch}"], env=WIMLIB_ENV)
    raw = scratch.read_bytes()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-16-le")
    try:
        root = ET.fromstring(text.lstrip("\ufeff"))
    except ET.ParseError as e:
        raise BuildError(detail=f"{wim}: its XML does not parse ({e})") from None
    out = []
    for img in root.findall("IMAGE"):
        win = img.find("WINDOWS")
        out.append(WimImage(int(img.get("INDEX", "0")), img.findtext("NAME") or "",
                            img.findtext("DESCRIPTION") or "", _int(win, "VERSION/MAJOR"),
                            _int(win, "VERSION/MINOR"), _int(win, "VERSION/BUILD"), _int(win, "ARCH")))
    return out


def choose_image(wim: Path, images: list[WimImage], index: int | None) -> WimImage:
    """The asked index, else the WinPE image (an install ISO's index 1), else its Setup image (whose
    Setup our own winpeshl.ini keeps from starting); then the version and architecture checks."""
    if not images:
        raise BuildError(detail=f"{wim} holds no image")
    if index is not None:
        pick = [i for i in images if i.index == index]
        if not pick:
            have = ", ".join(str(i.index) for i in images)
            raise BuildError(detail=f"{wim} has no image {index} (it has {have})")
        img = pick[0]
    else:
        def label(i: WimImage) -> str:
            return f"{i.name} {i.description}".lower()
        pe = [i for i in images if "windows pe" in label(i) and "setup" not in label(i)]
        setup = [i for i in images if "setup" in label(i)]
        img = (pe or setup or images)[0]
    if img.major is None:
        raise BuildError(detail=f"{wim} image {img.index} has no Windows version in its XML: "
                                "not a WinPE image")
    if img.major < 10:
        raise BuildError(detail=f"{wim} image {img.index} is WinPE {img.version}: rescue.exe needs WinPE 10 "
                                "or later (its Python needs Windows 8.1 APIs, its crypto Windows 10's)")
    if img.arch != ARCH_X64:
        what = ("of unknown architecture" if img.arch is None
                else ARCH_NAMES.get(img.arch, f"architecture {img.arch}"))
        raise BuildError(detail=f"{wim} image {img.index} is {what}: rescue.exe is x64, use an amd64 base")
    return img


@dataclass
class Base:
    """A located base: the WIM, the media root whose files go on the medium, and the El Torito images."""

    kind: str  # "adk", "iso" or "wim"
    name: str  # what the user named (for the manifest)
    boot_wim: Path
    media: Path
    etfsboot: Path
    efisys: Path

    def read_paths(self) -> list[Path]:
        return [self.boot_wim, self.media, self.etfsboot, self.efisys]


def _need(root: Path, rel: str, what: str) -> Path:
    p = find_ci(root, rel)
    if p is None:
        raise BuildError(detail=f"{what}: {root}/{rel} is missing (names are matched in any case)")
    return p


def _media_files(media: Path, what: str) -> None:
    for rel in MEDIA_FILES:
        _need(media, rel, what)


def _boot_images(media: Path, extra: list[Path], what: str) -> tuple[Path, Path]:
    """etfsboot.com and efisys.bin: in ``extra`` folders (copype's fwfiles), or where an install ISO
    keeps them."""
    found: list[Path] = []
    for name, iso_rel in (("etfsboot.com", "boot/etfsboot.com"),
                          ("efisys.bin", "efi/microsoft/boot/efisys.bin")):
        hits = [p for p in (*(find_ci(d, name) for d in extra), find_ci(media, iso_rel)) if p is not None]
        if not hits:
            where = " or ".join([*(str(d / name) for d in extra), str(media / iso_rel)])
            raise BuildError(detail=f"{what}: {name} is missing (looked for {where})")
        found.append(hits[0])
    return found[0], found[1]


def from_adk(folder: Path) -> Base:
    what = f"copype folder {folder}"
    media = _need(folder, "media", what)
    _media_files(media, what)
    etfs, efisys = _boot_images(media, [_need(folder, "fwfiles", what)], what)
    return Base("adk", str(folder), _need(media, "sources/boot.wim", what), media, etfs, efisys)


def from_media(boot_wim: Path, media: Path) -> Base:
    what = f"media folder {media}"
    if not boot_wim.is_file():
        raise BuildError(detail=f"boot.wim {boot_wim} is not a file")
    _media_files(media, what)
    fw = [d for d in (find_ci(media, "fwfiles"), find_ci(media.parent, "fwfiles")) if d is not None]
    etfs, efisys = _boot_images(media, fw, what)
    return Base("wim", str(boot_wim), boot_wim, media, etfs, efisys)


def from_iso(iso: Path, dest: Path) -> Base:
    """Extract the boot files and ``sources/boot.wim`` of an install ISO into ``dest`` (never install.wim)."""
    if not iso.is_file():
        raise BuildError(detail=f"Windows ISO {iso} is not a file")
    require("7z")
    shutil.rmtree(dest, ignore_errors=True)  # nothing left over from another ISO
    dest.mkdir(parents=True)
    # -ssc-: match the paths in any case; UDF first (Microsoft's ISOs keep their files there)
    run(["7z", "x", "-y", "-ssc-", f"-o{dest}", str(iso), "bootmgr", "bootmgr.efi", "boot", "efi",
         "sources/boot.wim"], timeout=1800)
    what = f"Windows ISO {iso}"
    _media_files(dest, what)
    etfs, efisys = _boot_images(dest, [], what)
    return Base("iso", str(iso), _need(dest, "sources/boot.wim", what), dest, etfs, efisys)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
