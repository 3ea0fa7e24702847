"""Registry hives on a Windows volume: the one place the repair reads a hive and writes it back.

Boot repair (BCD store, `MountedDevices`) and every later offline edit of Windows' hives go through
`load_hive` and `save_hive`, so what is done about a hive's state is decided here once. A dirty hive
(its last changes still in ``NAME.LOG1``/``NAME.LOG2`` or ``NAME.LOG``) is replayed from its logs in
memory as Windows does at boot (`core.regf.logs`); ``hive.recovery`` then says what was replayed, and
that recovered hive is what is shown and edited. Saving it writes the hive with equal sequence numbers
and then empties its logs, keeping each original beside it (``NAME.LOG1.rescue-bak-STAMP``): the
hive is written first, so a crash in between leaves a clean hive whose logs are older than it, which
Windows ignores. A dirty hive whose logs are missing or inconsistent is read as it is for showing and
refused for editing (`DirtyHiveError`, the reason in its message).
"""

from __future__ import annotations

from ..errors import DirtyHiveError
from ..regf.hive import Hive
from ..regf.logs import LogFile, needs_replay, replay
from ..regf.writer import HiveWriter
from .volumes import VolumeFiles

# The log files Windows keeps beside a hive: dual logging (Vista and later) and the single-log scheme.
LOG_EXTENSIONS = ("LOG1", "LOG2", "LOG")


def _log_path(path: str, ext: str) -> str:
    return f"{path}.{ext}"


def load_hive(files: VolumeFiles, path: str, name: str, *, for_edit: bool) -> Hive:
    """The hive at ``path`` (volume-relative, "/"-separated) of ``files``; ``name`` is how errors call it.

    A dirty hive is replayed from its logs (``hive.recovery`` is then set). When that is impossible,
    ``for_edit=False`` reads it as it is (``hive.dirty`` and ``hive.dirty_reason`` say why) and
    ``for_edit=True`` raises `DirtyHiveError`.
    """
    data = files.read(path)
    if not needs_replay(data):
        return Hive.from_bytes(data, name=name)
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    logs = []
    for ext in LOG_EXTENSIONS:
        p = _log_path(path, ext)
        logs.append(LogFile(f"{base}.{ext}", files.read(p) if files.exists(p) else None))
    try:
        recovery = replay(data, logs, name)
    except DirtyHiveError as e:
        if for_edit:
            raise
        hive = Hive.from_bytes(data, name=name, allow_dirty=True)
        hive.dirty_reason = f"{hive.dirty_reason}; not replayed: {e.kwargs['detail']}"
        return hive
    hive = Hive.from_bytes(recovery.data, name=name)
    hive.recovery = recovery
    return hive


def save_hive(files: VolumeFiles, path: str, writer: HiveWriter, *,
              kept_logs: list[str] | None = None) -> str | None:
    """Write the edited hive back atomically, keeping a copy of the old file; the copy's name, if any.

    For a hive replayed from its logs, the logs are then emptied (Windows creates them empty and
    writes a fresh base block before its next entry); the copy kept of each is added to ``kept_logs``.
    """
    bak = files.replace(path, writer.commit())
    if writer.hive.recovery is not None:
        for ext in LOG_EXTENSIONS:
            p = _log_path(path, ext)
            if files.exists(p) and files.read(p):
                log_bak = files.replace(p, b"")
                if log_bak and kept_logs is not None:
                    kept_logs.append(log_bak)
        writer.hive.recovery = None  # what is on disk now is a clean hive
    return bak
