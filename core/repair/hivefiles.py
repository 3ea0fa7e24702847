"""Registry hives on a Windows volume: the one place the repair reads a hive and writes it back.

Boot repair (BCD store, `MountedDevices`) and every later offline edit of Windows' hives go through
`load_hive` and `save_hive`, so what is done about a hive's state (a dirty hive whose last changes sit
in its transaction logs) is decided here once. Today a dirty hive is read as it is for showing and
refused for editing (`HiveWriter` refuses it): writing it would silently discard its logs.
"""

from __future__ import annotations

from ..regf.hive import Hive
from ..regf.writer import HiveWriter
from .volumes import VolumeFiles


def load_hive(files: VolumeFiles, path: str, name: str, *, for_edit: bool) -> Hive:
    """The hive at ``path`` (volume-relative, "/"-separated) of ``files``; ``name`` is how errors call it.

    ``for_edit=False`` reads a dirty hive as it is (``hive.dirty`` tells); ``for_edit=True`` refuses it
    with `FormatError`/`UnsupportedError` as the reader and writer do.
    """
    return Hive.from_bytes(files.read(path), name=name, allow_dirty=not for_edit)


def save_hive(files: VolumeFiles, path: str, writer: HiveWriter) -> str | None:
    """Write the edited hive back atomically, keeping a copy of the old file; the copy's name, if any."""
    return files.replace(path, writer.commit())
