"""Host tools the build runs: a check that names the Debian package to install, and one way to run them.

Every external program the builder calls is listed in ``TOOL_PACKAGES`` so that a missing one stops the
build up front with the package name, instead of a FileNotFoundError halfway through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from builder.errors import BuildError, MissingTool

# tool -> Debian package that ships it (Debian 12)
TOOL_PACKAGES: dict[str, str] = {
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "ldd": "libc-bin",
    "xorriso": "xorriso",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
}

# Where tools live on Debian when PATH lacks the sbin directories (non-root shells).
_EXTRA_PATH = ("/usr/sbin", "/sbin")


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in _EXTRA_PATH:
        p = Path(d) / tool
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def require(*tools: str) -> dict[str, str]:
    """Absolute paths of ``tools``; MissingTool (naming the package) for the first one absent."""
    out: dict[str, str] = {}
    for tool in tools:
        path = which(tool)
        if path is None:
            raise MissingTool(tool=tool, package=TOOL_PACKAGES.get(tool, "providing " + tool))
        out[tool] = path
    return out


def run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600, capture: bool = True) -> str:
    """Run a host tool; its stdout as text. A non-zero exit is a BuildError with the tail of stderr."""
    exe = which(cmd[0]) or cmd[0]
    try:
        proc = subprocess.run([exe, *cmd[1:]], cwd=cwd, env=env, timeout=timeout, check=False,
                              stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise MissingTool(tool=cmd[0], package=TOOL_PACKAGES.get(cmd[0], "providing " + cmd[0])) from None
    except subprocess.TimeoutExpired:
        raise BuildError(detail=f"{cmd[0]} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        tail = " | ".join(err[-3:]) if err else "(no message)"
        raise BuildError(detail=f"{' '.join(cmd[:3])} ... exited with {proc.returncode}: {tail}")
    return proc.stdout.decode(errors="replace") if capture else ""
