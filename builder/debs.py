"""Debian packages as build inputs: download with ``apt-get download``, unpack with ``dpkg-deb -x``.

Nothing is installed on the host, so the build works as a normal user and does not touch the system.
Downloads and unpacked trees are cached in the work directory by package name and version, so a
rebuild with unchanged package versions does no network access beyond reading the apt cache.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.host import run


@dataclass(frozen=True)
class Package:
    name: str
    version: str

    @property
    def deb_name(self) -> str:
        # apt-get download escapes the epoch colon as %3a in the file name
        return f"{self.name}_{self.version.replace(':', '%3a')}_"


def candidate(name: str) -> tuple[Package, str]:
    """The version apt would install, and that version's Depends field."""
    text = run(["apt-cache", "show", "--no-all-versions", name])
    version = re.search(r"^Version: (\S+)$", text, re.MULTILINE)
    if not version:
        raise BuildError(detail=f"apt knows no package {name} (run apt-get update; is it Debian 12?)")
    depends = re.search(r"^Depends: (.*)$", text, re.MULTILINE)
    return Package(name, version.group(1)), depends.group(1) if depends else ""


def kernel_package(meta: str = "linux-image-amd64") -> Package:
    """The versioned kernel package the metapackage points at (Debian's signed kernel)."""
    _, depends = candidate(meta)
    m = re.match(r"(linux-image-[0-9][^ ,]*)", depends)
    if not m:
        raise BuildError(detail=f"{meta} depends on no linux-image package: {depends!r}")
    return candidate(m.group(1))[0]


def fetch(pkg: Package, cache: Path) -> Path:
    """The .deb of ``pkg`` in ``cache``, downloading it when absent."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(pkg.deb_name + "*.deb"))
    if not found:
        tmp = cache / ".download"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        run(["apt-get", "download", f"{pkg.name}={pkg.version}"], cwd=tmp, timeout=900)
        for deb in tmp.glob("*.deb"):
            deb.replace(cache / deb.name)  # appears only once the download is complete
        shutil.rmtree(tmp, ignore_errors=True)
        found = sorted(cache.glob(pkg.deb_name + "*.deb"))
        if not found:
            raise BuildError(detail=f"apt-get download {pkg.name}={pkg.version} left no .deb in {cache}")
    return found[0]


def unpacked(pkg: Package, cache: Path) -> Path:
    """``pkg`` unpacked (``dpkg-deb -x``) under ``cache``; unpacked once per version."""
    dest = cache / "unpacked" / f"{pkg.name}_{pkg.version.replace(':', '%3a')}"
    done = dest / ".unpacked"
    if not done.exists():
        deb = fetch(pkg, cache)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(dest)])
        done.touch()
    return dest


def unpack_all(names: list[str], cache: Path) -> dict[str, Path]:
    """Candidate versions of ``names``, each unpacked; name -> root of its tree."""
    return {name: unpacked(candidate(name)[0], cache) for name in names}
