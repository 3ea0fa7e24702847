"""Deterministic fault points in a backup's commit path (R-11), installed by monkeypatching.

Every durable step the engine takes in the backup folder is an *event*: creating the lock or a
file (``os.open``), closing a volume (``VolumeWriter._close_current``), ``os.fsync``, ``os.rename``,
``fsync_dir`` and removing the lock. Events are numbered in the order they happen; `FaultPoints`
makes event ``at`` fail:

- ``mode="raise"``: the call raises as the real system call would (``OSError(EIO)``; a volume close
  raises what a failed trailer write raises), before doing anything: the engine's clean-failure path.
- ``mode="crash"``: the process ends on the spot with ``os._exit`` (no cleanup, no ``finally``), as
  a power cut or ``kill -9`` between two steps would: before an fsync/rename/close/unlink, and just
  after a create (so an empty lock or volume file is left, as a crash right there leaves one).

Image ids are replaced by ``ID`` in event names, so runs compare equal.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any, Callable

import pytest

import core.format.manifest as manifest_mod
import core.format.volume as volume_mod
import core.io.atomic as atomic_mod
from core.format.volume import VolumeWriter
from core.io.atomic import os_error

CRASH_EXIT = 137
_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_OURS = re.compile(r"^(rescue\.lock|ID\.(manifest|v\d{4})(\.partial)?)$")


def _name(path: object) -> str:
    return _ID_RE.sub("ID", os.path.basename(os.fsdecode(path)))  # type: ignore[arg-type]


class FaultPoints:
    def __init__(self, at: int | None = None, mode: str = "raise") -> None:
        if mode not in ("raise", "crash"):
            raise ValueError(mode)
        self.at = at
        self.mode = mode
        self.events: list[str] = []

    def _event(self, what: str, when: str) -> None:
        """``when`` is "before" or "after" the real call; a fault fires at the mode's moment."""
        if when == "before":
            self.events.append(what)
        k = len(self.events) - 1
        if k != self.at:
            return
        if self.mode == "crash" and (when == "after") == what.startswith("create "):
            os._exit(CRASH_EXIT)
        if self.mode == "raise" and when == "before":
            raise OSError(errno.EIO, f"injected fault at event {k} ({what})")

    def install(self, setattr_: Callable[[Any, str, Any], None]) -> None:
        """Patch through ``setattr_`` (pytest's ``monkeypatch.setattr``, or plain setattr in a child)."""
        real_open, real_fsync, real_rename, real_unlink = os.open, os.fsync, os.rename, os.unlink
        real_fsync_dir = atomic_mod.fsync_dir
        real_close = VolumeWriter._close_current
        fp = self

        def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            name = _name(path)
            ours = bool(flags & os.O_CREAT) and bool(_OURS.match(name))
            if ours:
                fp._event(f"create {name}", "before")
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            if ours:
                fp._event(f"create {name}", "after")
            return fd

        def fsync(fd: int) -> None:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = "?"
            if not os.path.isdir(path):  # a folder's fsync is fsync_dir's own event
                fp._event(f"fsync {_name(path)}", "before")
            real_fsync(fd)

        def rename(src: Any, dst: Any, **kw: Any) -> None:
            fp._event(f"rename {_name(src)}", "before")
            real_rename(src, dst, **kw)

        def unlink(path: Any, **kw: Any) -> None:
            if _name(path) == "rescue.lock":
                fp._event("unlock", "before")
            real_unlink(path, **kw)

        def fsync_dir(path: str) -> None:
            fp._event("fsync_dir", "before")
            real_fsync_dir(path)

        def close_current(self: VolumeWriter, final: bool) -> None:
            try:
                fp._event(f"close v{self._number + 1:04d}", "before")
            except OSError as e:
                # What the real method raises when its trailer write fails.
                raise os_error(e, self.folder, f"writing volume {self._number + 1}") from e
            real_close(self, final)

        setattr_(os, "open", open_)
        setattr_(os, "fsync", fsync)
        setattr_(os, "rename", rename)
        setattr_(os, "unlink", unlink)
        setattr_(atomic_mod, "fsync_dir", fsync_dir)
        setattr_(volume_mod, "fsync_dir", fsync_dir)  # imported by name there
        setattr_(manifest_mod, "fsync_dir", fsync_dir)
        setattr_(VolumeWriter, "_close_current", close_current)


def run_crashing(at: int, job: Callable[[], object]) -> tuple[int, int]:
    """Run ``job`` in a forked child with event ``at`` crashing it; returns (child pid, exit status)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            FaultPoints(at, "crash").install(setattr)
            job()
        except BaseException:  # noqa: BLE001 - the child reports any failure as its exit code
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(status)


def install_raising(monkeypatch: pytest.MonkeyPatch, at: int | None) -> FaultPoints:
    fp = FaultPoints(at, "raise")
    fp.install(monkeypatch.setattr)
    return fp
