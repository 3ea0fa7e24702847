"""Loop devices for the disk tests, through `core.platform` (its retry policy), always detached."""

from __future__ import annotations

import contextlib
from pathlib import Path

from core import platform


def _run(cmd: list[str]) -> str:
    return platform.run(cmd, " ".join(cmd), error=RuntimeError)


def loop(path: Path, *, offset: int = 0, size: int | None = None, readonly: bool = False,
         sector_size: int | None = None) -> contextlib.AbstractContextManager[str]:
    """Attach ``path`` as a loop device for a ``with`` block; a failure is RuntimeError."""
    return platform.loop_device(str(path), offset=offset, size=size, readonly=readonly, sector_size=sector_size,
                                error=RuntimeError)
