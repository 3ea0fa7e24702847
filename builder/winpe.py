"""Build WinPE rescue media from a user-supplied base: a new ``boot.wim`` carrying the frozen
``rescue.exe`` folder, and a BIOS+UEFI ISO (or, in builder/winpe_usb.py, a USB stick).

Steps (wimlib's tools, xorriso; the base is only read):
1. choose the WinPE image of the base's ``boot.wim`` and check it (builder/winpe_base.py);
2. ``wimexport --boot`` that image alone into a new ``boot.wim``;
3. ``wimupdate``: overlay ``\\rescue`` (the Windows build's folder, unchanged), ``\\rescue-pe`` (the build
   id, the drivers) and the start files (builder/winpe_start.py);
4. check that every DLL the bundle imports is in the image's System32 (``wimdir``) or in the bundle;
5. lay out the medium (the base's boot files, the new ``sources\\boot.wim``, ``rescue-pe.id``, an optional
   ``rescue-run.cmd``) and make the ISO: El Torito BIOS from ``etfsboot.com``, UEFI from ``efisys.bin``.
Beside the ISO: ``NAME.boot.wim`` (the same image alone, for PXE/WDS) and ``NAME.manifest.json``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import winpe_start
from builder.pe_imports import missing_dlls
from builder.errors import BuildError
from builder.host import require, run
from builder.winpe_base import WIMLIB_ENV, Base, choose_image, find_ci, sha256, wim_images
from core import __version__

WIM_TOOLS = ("wiminfo", "wimexport", "wimupdate", "wimdir")
ISO_TOOLS = ("xorriso",)
VOLUME_ID = "RESCUE_PE"
MARKER = "rescue-pe.id"
RUN_SCRIPT = "rescue-run.cmd"


@dataclass
class Assembled:
    """The new boot.wim and what the medium carries besides it."""

    boot_wim: Path
    build_id: str
    run_script: Path | None
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def tree_hash(folder: Path) -> str:
    """One hash over a folder's relative paths and contents (the manifest's and the tests' identity)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + bytes.fromhex(sha256(f)) + b"\0")
    return h.hexdigest()


def wim_paths(wim: Path, index: int = 1) -> list[str]:
    """Every path of an image (``wimdir``), as ``/Windows/System32/...``."""
    return [line for line in run(["wimdir", str(wim), str(index)], env=WIMLIB_ENV).splitlines() if line]


def system32_names(paths: Iterable[str]) -> set[str]:
    prefix = "/windows/system32/"
    return {p[len(prefix):] for p in (q.lower() for q in paths)
            if p.startswith(prefix) and "/" not in p[len(prefix):]}


def _check_rescue_dir(folder: Path) -> None:
    if not folder.is_dir() or find_ci(folder, "rescue.exe") is None:
        raise BuildError(detail=f"{folder} holds no rescue.exe: pass the folder `rescue-build windows` makes")


def _drivers(drivers: Path | None) -> list[Path]:
    if drivers is None:
        return []
    infs = sorted(p for p in drivers.rglob("*") if p.is_file() and p.suffix.lower() == ".inf")
    if not infs:
        raise BuildError(detail=f"--drivers {drivers} holds no .inf file")
    return infs


def assemble(base: Base, index: int | None, rescue_dir: Path, work: Path, drivers: Path | None = None,
             run_script: Path | None = None) -> Assembled:
    """Steps 1-4: ``work``/boot.wim with the rescue folder and start files, checked."""
    require(*WIM_TOOLS)
    _check_rescue_dir(rescue_dir)
    infs = _drivers(drivers)
    if run_script is not None and not run_script.is_file():
        raise BuildError(detail=f"run script {run_script} is not a file")
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    img = choose_image(base.boot_wim, wim_images(base.boot_wim, work / "base.xml"), index)
    base_hash = sha256(base.boot_wim)
    seconds["check"] = time.monotonic() - t0

    t0 = time.monotonic()
    new = work / "boot.wim"
    new.unlink(missing_ok=True)
    run(["wimexport", str(base.boot_wim), str(img.index), str(new), "--boot"], env=WIMLIB_ENV, timeout=1800)
    build_id = secrets.token_hex(8)
    overlay = work / "overlay"
    shutil.rmtree(overlay, ignore_errors=True)
    shutil.copytree(rescue_dir, overlay / "rescue")
    pe = overlay / "rescue-pe"
    pe.mkdir()
    (pe / "medium.id").write_bytes(winpe_start.crlf(build_id + "\n"))
    if drivers is not None:
        shutil.copytree(drivers, pe / "drivers")
    sys32 = overlay / "Windows" / "System32"
    sys32.mkdir(parents=True)
    (sys32 / "startnet.cmd").write_bytes(winpe_start.startnet(__version__, build_id))
    (sys32 / "winpeshl.ini").write_bytes(winpe_start.winpeshl())
    # One "add" of a tree merges it into the image's root; with IGNORE_CASE our Windows/System32 is the
    # image's own however the base spells it, and our start files replace its.
    run(["wimupdate", str(new), "1", f'--command=add "{overlay}" /'], env=WIMLIB_ENV, timeout=1800)
    seconds["wim"] = time.monotonic() - t0

    paths = wim_paths(new)
    # the Windows build's check (builder/pe_imports.py), with this image's System32 for its declared list
    missing = missing_dlls(rescue_dir, system32_names(paths))
    if missing:
        what = "; ".join(f"{dll} (imported by {', '.join(users[:3])})"
                         for dll, users in sorted(missing.items()))
        raise BuildError(detail=f"the WinPE image lacks DLLs the rescue folder imports: {what}")
    manifest: dict[str, Any] = {
        "build_id": build_id,
        "rescue_version": __version__,
        "base": {"kind": base.kind, "name": base.name, "boot_wim_sha256": base_hash, "index": img.index,
                 "image_name": img.name, "version": img.version, "arch": "x64"},
        "rescue_folder": {"path": str(rescue_dir), "tree_sha256": tree_hash(rescue_dir),
                          "rescue_exe_sha256": sha256(find_ci(rescue_dir, "rescue.exe") or rescue_dir)},
        "drivers": [{"inf": str(p.relative_to(drivers)), "sha256": sha256(p)}
                    for p in infs] if drivers else [],
        "run_script": {"name": run_script.name, "sha256": sha256(run_script)} if run_script else None,
        "boot_wim_sha256": sha256(new),
        "image_files": len(paths),
    }
    return Assembled(new, build_id, run_script, manifest, seconds)


def medium_files(base: Base, built: Assembled, work: Path) -> dict[str, Path]:
    """Medium path -> source: what the ISO or the stick carries (the base's boot files, not its WIMs;
    the marker naming this build, by which startnet.cmd knows the medium it booted from)."""
    marker = work / MARKER
    marker.write_bytes(winpe_start.crlf(built.build_id + "\n"))
    files: dict[str, Path] = {MARKER: marker}
    for f in sorted(base.media.rglob("*")):
        rel = f.relative_to(base.media).as_posix()
        if f.is_file() and not rel.lower().startswith("sources/"):
            files[rel] = f
    files["sources/boot.wim"] = built.boot_wim
    if built.run_script is not None:
        files[RUN_SCRIPT] = built.run_script
    return files


def _spelled_as(rel: str, files: dict[str, Path]) -> str:
    """``rel`` with its folders spelled as the medium already spells them (``Boot``, ``EFI``): ISO 9660
    and Joliet would keep ``boot`` and ``Boot`` apart, and Windows would then see two folders."""
    parts = rel.split("/")
    for i in range(len(parts) - 1):
        prefix = "/".join(parts[:i + 1]).lower()
        for r in files:
            have = r.split("/")
            if len(have) > i + 1 and "/".join(have[:i + 1]).lower() == prefix:
                parts[i] = have[i]
                break
    return "/".join(parts)


def _etfs_efisys_paths(base: Base, files: dict[str, Path]) -> tuple[str, str]:
    """Where the El Torito images are on the medium: where the base has them, else where an install
    ISO keeps them (copype keeps them outside the media folder, in fwfiles/)."""
    out = []
    for src, default in ((base.etfsboot, "boot/etfsboot.com"),
                         (base.efisys, "efi/microsoft/boot/efisys.bin")):
        rel = next((r for r, p in files.items() if p == src), None)
        if rel is None:
            rel = _spelled_as(default, files)
            files[rel] = src
        out.append(rel)
    return out[0], out[1]


def write_iso(base: Base, built: Assembled, out: Path, work: Path) -> None:
    """Step 5, and the boot.wim and manifest beside the ISO."""
    require(*ISO_TOOLS)
    files = medium_files(base, built, work)
    etfs, efisys = _etfs_efisys_paths(base, files)
    tmp = out.with_name(out.name + ".tmp")
    # -graft-points: each file goes in from where it is, no copy of the base into a staging tree
    specs = [f"/{rel}={src}" for rel, src in sorted(files.items())]
    try:
        run(["xorriso", "-as", "mkisofs", "-quiet", "-iso-level", "3", "-J", "-joliet-long", "-V", VOLUME_ID,
             "-o", str(tmp), "-b", etfs, "-no-emul-boot", "-boot-load-size", "8", "-hide", "boot.catalog",
             "-eltorito-alt-boot", "-e", efisys, "-no-emul-boot", "-graft-points", *specs], timeout=1800)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    shutil.copyfile(built.boot_wim, out.with_name(out.stem + ".boot.wim"))
    write_manifest(built, out.with_name(out.stem + ".manifest.json"), files, iso=out.name)


def write_manifest(built: Assembled, dest: Path, files: dict[str, Path], **extra: str) -> Path:
    """What went in (base, index, version, hashes, rescue folder, drivers) and the medium's file list."""
    manifest = {**built.manifest, **extra, "medium_files": sorted(files)}
    dest.write_text(json.dumps(manifest, indent=2) + "\n")
    return dest
