"""Back up this PC: the disk, the backup folder, full or only what changed, encryption, compression,
then the job. A backup writes only into the backup folder, so it needs no typed confirmation."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from core.disk.discover import DiskSummary
from core.engine.backup import BackupOptions, backup
from core.engine.repo import ImageEntry, Repository
from core.errors import Error, WrongPassword
from core.platform.letters import filesystem
from core.platform.mounts import mounts
from core.platform.ramfs import ram_filesystem

from . import job, password, result
from .app import Guide
from .disks import disks, label
from .places import intro as places_intro
from .places import places
from .ui import Entry, form, frame, human, menu, texts

TITLE = "Back up this PC"
# FAT32 holds files of at most 4 GiB - 1 byte; volumes are split a little below that.
FAT32_SPLIT = 4000 << 20
LEVELS = [("Fast: a somewhat bigger backup (recommended)", 1), ("Balanced: smaller, slower", 3),
          ("Smallest: much slower", 19)]


@dataclass
class Choice:
    disk: DiskSummary | None = None
    folder: str = ""
    images: list[ImageEntry] = field(default_factory=list)
    mode: str = "full"
    password: bytes | None = None
    level: int = 1


def start(guide: Guide) -> None:
    from .main_menu import main_menu

    c = Choice()
    found = disks(guide.disk_files)
    items = [(label(d), lambda d=d: _folder(guide, c, d)) for d in found]
    intro = texts("Which disk do you want to back up?" if found else "No disks were found.")
    guide.show(frame(TITLE, menu(intro, items)), lambda: main_menu(guide))


def _folder(guide: Guide, c: Choice, disk: DiskSummary, problem: str = "") -> None:
    c.disk = disk

    def chosen(text: str) -> None:
        path = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        if not path:
            _folder(guide, c, disk, "Type the folder where the backup goes.")
            return
        c.folder = path
        ram = ram_filesystem(path)
        if ram:
            body = menu(texts(f"{path} is in memory ({ram}): a backup there is gone at power off.",
                              "Mount the backup disk and type a folder on it."),
                        [("Choose another folder", lambda: _folder(guide, c, disk))])
            guide.show(frame(TITLE, body), lambda: _folder(guide, c, disk))
            return
        try:
            found = Repository(path).list_images() if os.path.isdir(path) else []
            c.images = [i for i in found if i.complete]
        except Error as e:
            _folder(guide, c, disk, e.message)
            return
        _mode(guide, c)

    def typed(proposed: str) -> None:
        c.folder = proposed
        lines = texts(problem, style="error") if problem else []
        lines += texts("Type the backup folder (on the backup disk, mounted). It is created if it",
                       "does not exist; earlier backups there are kept.")
        guide.show(frame(TITLE, form(lines, Entry("Folder: ", chosen, text=c.folder)), password.KEYS),
                   lambda: _folder(guide, c, disk))

    if problem:
        typed(c.folder)
        return
    items = [("Type a folder", lambda: typed(c.folder))]
    items += [(text, lambda folder=folder: typed(folder)) for folder, text in places()]
    intro = texts(places_intro())
    guide.show(frame(TITLE, menu(intro, items)),
               lambda: start(guide))


def _mode(guide: Guide, c: Choice) -> None:
    back = lambda: _folder(guide, c, c.disk) if c.disk else start(guide)  # noqa: E731
    if not c.images:
        c.mode = "full"
        _encryption(guide, c)
        return
    last = c.images[-1]
    lock = " (encrypted)" if last.encrypted else ""

    def pick(mode: str) -> None:
        c.mode = mode
        if mode == "incremental" and last.encrypted:
            password.ask(guide, TITLE, "The earlier backups are encrypted: type their password.",
                         lambda pw: _set_password(guide, c, pw), lambda: _mode(guide, c))
        elif mode == "incremental":
            _compression(guide, c)
        else:
            _encryption(guide, c)

    intro = texts(f"This folder holds {len(c.images)} backup(s); the last one, {last.kind}{lock}, "
                  f"from {last.time[:19].replace('T', ' ')}.")
    guide.show(frame(TITLE, menu(intro, [("Only what changed since the last backup (incremental)",
                                          lambda: pick("incremental")),
                                         ("Everything again (full backup)", lambda: pick("full"))])), back)


def _set_password(guide: Guide, c: Choice, pw: bytes) -> None:
    c.password = pw
    _compression(guide, c)


def _encryption(guide: Guide, c: Choice) -> None:
    def plain() -> None:
        c.password = None
        _compression(guide, c)

    def ask() -> None:
        password.ask_new(guide, TITLE, lambda pw: _set_password(guide, c, pw), lambda: _encryption(guide, c))

    items = [("Yes, with a password", ask),
             ("No", plain)]
    guide.show(frame(TITLE, menu(texts("Encrypt the backup? Anyone holding an unencrypted backup can read",
                                       "every file in it."), items)), lambda: _mode(guide, c))


def _compression(guide: Guide, c: Choice) -> None:
    def pick(level: int) -> None:
        c.level = level
        _summary(guide, c)

    items = [(text, lambda level=level: pick(level)) for text, level in LEVELS]
    guide.show(frame(TITLE, menu(texts("How much should the backup be compressed?"), items)),
               lambda: _encryption(guide, c))


def _split(folder: str) -> int | None:
    """Volumes below 4 GiB when the folder is on FAT32 (vfat), which holds no bigger file."""
    if sys.platform == "win32":
        return FAT32_SPLIT if filesystem(folder).upper() in ("FAT32", "FAT") else None
    best = None
    for m in mounts():
        if folder == m.mount_point or folder.startswith(m.mount_point.rstrip("/") + "/"):
            if best is None or len(m.mount_point) > len(best.mount_point):
                best = m
    return FAT32_SPLIT if best is not None and best.fs_type in ("vfat", "msdos") else None


def _summary(guide: Guide, c: Choice) -> None:
    if c.disk is None:
        return  # reached only after the disk was chosen
    split = _split(c.folder)
    kind = "only what changed (incremental)" if c.mode == "incremental" else "full"
    lines = texts(f"Disk:        {c.disk.name} ({human(c.disk.size)})", f"Folder:      {c.folder}",
                  f"Backup:      {kind}", f"Encrypted:   {'yes' if c.password else 'no'}",
                  f"Compression: {next(t for t, lv in LEVELS if lv == c.level).split(':')[0]}",
                  *([f"Split:       into {human(split)} files (the folder is on FAT32)"] if split else []),
                  "", "The disk is only read; the backup is written into the folder.")
    guide.show(frame(TITLE, menu(lines, [("Start the backup", lambda: _run(guide, c, split))])),
               lambda: _compression(guide, c))


def _run(guide: Guide, c: Choice, split: int | None) -> None:
    if c.disk is None:
        return
    source = c.disk.name
    try:
        os.makedirs(c.folder, exist_ok=True)
    except OSError:
        pass  # the engine says why the folder cannot be used
    log = job.new_log(guide, c.folder, "backup")
    log.line(f"backup of {source} into {c.folder}: {c.mode}, level {c.level}, "
             f"{'encrypted' if c.password else 'not encrypted'}")
    options = BackupOptions(level=c.level, password=c.password, split=split, mode=c.mode)

    def done(j: job.Job) -> None:
        if isinstance(j.error, WrongPassword):  # found before anything was written: ask again
            password.ask(guide, TITLE, "The earlier backups are encrypted: type their password.",
                         lambda pw: _again(guide, c, split, pw), lambda: _mode(guide, c),
                         f"{j.error.message}. Type it again.")
            return
        r = j.result
        lines = []
        if r is not None:
            j.log.line(f"image {r.image_id}: read {r.read_bytes}, stored {r.stored_bytes} bytes")
            lines = [f"{r.kind} backup {r.image_id} of {source}", f"into {c.folder}:",
                     f"read {human(r.read_bytes)}, stored {human(r.stored_bytes)} in {r.seconds:.0f} s."]
        result.show(guide, TITLE, j, lines, ["Keep the backup disk somewhere safe.",
                                             "Next time, choose \"only what changed\": it is much faster."])

    job.run(guide, TITLE, log, lambda progress: backup(source, c.folder, options, progress), done,
            job.STOP_BACKUP)


def _again(guide: Guide, c: Choice, split: int | None, pw: bytes) -> None:
    c.password = pw
    _run(guide, c, split)
