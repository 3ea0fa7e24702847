"""Choosing a restore point: the backup folder (typed), then its complete images as restore points
(date, kind, size), newest first. Shared by Restore a backup and Take files out of a backup."""

from __future__ import annotations

import os
from typing import Callable

from core.engine.repo import ImageEntry, Repository
from core.errors import Error

from .app import Guide
from .ui import Entry, form, frame, human, menu, texts

KINDS = {"full": "full", "incremental": "changes only", "differential": "changes since full"}


def point_label(i: ImageEntry) -> str:
    kind = KINDS.get(i.kind, i.kind)
    lock = "  encrypted" if i.encrypted else ""
    return f"{i.time[:19].replace('T', ' ')}  {kind:18} {human(i.bytes):>10}{lock}"


def choose_point(guide: Guide, title: str, folder: str, on_point: Callable[[str, ImageEntry], None],
                 back: Callable[[], None], problem: str = "") -> None:
    """Ask for the folder, then a restore point in it; ``on_point(folder, image)`` continues."""
    def chosen(text: str) -> None:
        path = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        try:
            images = [i for i in Repository(path).list_images() if i.complete]
        except Error as e:
            choose_point(guide, title, path, on_point, back, e.message)
            return
        if not images:
            choose_point(guide, title, path, on_point, back, f"{path} holds no complete backup.")
            return
        items = [(point_label(i) + ("  (latest)" if n == 0 else ""), lambda i=i: on_point(path, i))
                 for n, i in enumerate(reversed(images))]
        guide.show(frame(title, menu(texts("Which restore point? (date in UTC, kind, size)"), items)),
                   lambda: choose_point(guide, title, path, on_point, back))

    lines = texts(problem, style="error") if problem else []
    lines += texts("Where is the backup? Type its folder (on the backup disk, mounted).")
    guide.show(frame(title, form(lines, Entry("Folder: ", chosen, text=folder)), "Enter: next   Esc: back"),
               back)
