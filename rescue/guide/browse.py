"""Browsing a backup's folders to pick what to take out: the image is mounted read-only as
`rescue mount` does it (`rescue.mount.server`), its partitions' folders listed, and the mount removed
again as soon as a file or folder is picked or the user leaves; the copy itself is `rescue extract`'s."""

from __future__ import annotations

import os
import tempfile
from typing import Callable

from rescue.mount import server, stack

from .app import Guide
from .ui import frame, human, menu, texts

# Folders with more entries are shown cut (said on the screen): a list a person scrolls through.
MAX_ENTRIES = 2000


class Browser:
    """One mounted image, browsed; ``on_pick(partition, path)`` gets a "/"-separated path inside it."""

    def __init__(self, guide: Guide, title: str, mounted: server.MountResult,
                 on_pick: Callable[[int, str], None], back: Callable[[], None]) -> None:
        self.guide, self.title, self.mounted = guide, title, mounted
        self.on_pick, self.back = on_pick, back
        guide.cleanups[mounted.mountpoint] = self.close  # also when the guide is ended while browsing

    def close(self) -> None:
        self.guide.cleanups.pop(self.mounted.mountpoint, None)
        stack.teardown(self.mounted.mountpoint, lazy=True)
        server.reap(self.mounted.pid)
        try:
            os.rmdir(self.mounted.mountpoint)
        except OSError:
            pass  # still detaching: the empty folder goes with the next reboot

    def _leave(self, then: Callable[[], None]) -> None:
        self.close()
        then()

    def partitions(self) -> None:
        parts = [p for p in self.mounted.partitions if p["browsable"]]
        items = [(f"partition {p['number']}: {p['fs']} {p['label']!r} {human(p['size'])}  ({p['role']})",
                  lambda p=p: self.folder(p["number"], p["name"], "")) for p in parts]
        self.guide.show(frame(self.title, menu(texts("Which partition? (Windows is usually the largest)"),
                                               items)), lambda: self._leave(self.back))

    def folder(self, number: int, name: str, rel: str) -> None:
        full = os.path.join(self.mounted.mountpoint, name, rel)
        up = (lambda: self.folder(number, name, os.path.dirname(rel))) if rel else self.partitions
        try:
            with os.scandir(full) as it:
                found = sorted(it, key=lambda e: (not e.is_dir(follow_symlinks=False), e.name.lower()))
        except OSError as err:
            self.guide.show(frame(self.title, menu(texts(f"{rel or '/'} cannot be read: {err.strerror}"),
                                                   [("Back", up)])), up)
            return
        items: list[tuple[str, Callable[[], None]]] = [
            (f"[Take out this folder: {rel or 'the whole partition'}]", lambda: self._leave(
                lambda: self.on_pick(number, rel)))]
        for entry in found[:MAX_ENTRIES]:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                items.append((f"{entry.name}/", lambda path=path: self.folder(number, name, path)))
            else:
                size = entry.stat(follow_symlinks=False).st_size
                items.append((f"{entry.name}  {human(size)}",
                              lambda path=path: self._leave(lambda: self.on_pick(number, path))))
        more = [f"({len(found) - MAX_ENTRIES} more not shown)"] if len(found) > MAX_ENTRIES else []
        intro = texts(f"partition {number}: /{rel}", "Enter on a folder opens it, on a file takes it out.",
                      *more)
        self.guide.show(frame(self.title, menu(intro, items), "Enter: open or take   Esc: up"), up)


def mount(folder: str, image_id: str, password: bytes | None, log: str) -> server.MountResult:
    """The image mounted read-only in a fresh folder (where `rescue mount` keeps its logs); the mount
    server writes its lines into the operation's log ``log``."""
    base = server.LOG_DIR if os.access("/run", os.W_OK) else tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    mp = tempfile.mkdtemp(prefix="guide-browse-", dir=base)
    try:
        return server.mount(folder, image_id, lambda: password, mp, log_path=log)
    except BaseException:
        os.rmdir(mp)
        raise

