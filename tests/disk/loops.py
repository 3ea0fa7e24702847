"""Loop devices for the disk tests: attach with losetup options, always detach."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Iterator


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def loop(path: Path, *opts: str) -> Iterator[str]:
    """Attach ``path`` as a loop device (extra losetup options), detach in finally."""
    dev = ""
    for attempt in range(5):  # parallel tests race for the free loop device: retry the loser
        try:
            dev = _run(["losetup", "-f", "--show", *opts, str(path)]).strip()
            break
        except RuntimeError:
            if attempt == 4:
                raise
            time.sleep(0.2)
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
