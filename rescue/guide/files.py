"""Take files out of a backup: the restore point, the password if needed, what to copy (a file or folder
of the Windows partition, typed) and where to (a folder, typed), then `rescue.mount.extract.extract`,
as `rescue extract` does: never writes outside that folder, keeps timestamps, lists what it could not
read."""

from __future__ import annotations

import os

from core.engine.repo import ImageEntry
from core.errors import IntegrityError, PasswordRequired, WrongPassword
from rescue.mount.extract import ExtractResult, extract

from . import job, password, result
from .app import Guide
from .points import choose_point
from .ui import Entry, form, frame, human, texts

TITLE = "Take files out of a backup"
KEYS = "Enter: next   Esc: back"


def start(guide: Guide, folder: str = "") -> None:
    from .main_menu import main_menu

    choose_point(guide, TITLE, folder, lambda f, image: _what(guide, f, image), lambda: main_menu(guide))


def _what(guide: Guide, folder: str, image: ImageEntry, path: str = "") -> None:
    lines = texts("What should be copied? A file or folder of the Windows partition, for example",
                  "  Users\\Anna\\Documents", "(capitals do not matter; empty: the whole partition).")
    guide.show(frame(TITLE, form(lines, Entry("Copy: ", lambda p: _where(guide, folder, image, p), text=path)),
                     KEYS), lambda: start(guide, folder))


def _where(guide: Guide, folder: str, image: ImageEntry, path: str, problem: str = "") -> None:
    def chosen(text: str) -> None:
        to = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        if not to:
            _where(guide, folder, image, path, "Type the folder to copy into.")
            return
        log = job.new_log(folder, "files")
        if image.encrypted:
            password.ask_or_give_up(guide, TITLE, log, lambda pw: _copy(guide, folder, image, path, to, log, pw))
        else:
            _copy(guide, folder, image, path, to, log, None)

    lines = texts(problem, style="error") if problem else []
    lines += texts("Copy into which folder? (on another disk, mounted; created if it does not exist)")
    guide.show(frame(TITLE, form(lines, Entry("Into: ", chosen)), KEYS), lambda: _what(guide, folder, image, path))


def _copy(guide: Guide, folder: str, image: ImageEntry, path: str, to: str, log: job.Log, pw: bytes | None) -> None:
    log.line(f"copy {path or 'the whole partition'} of image {image.id} from {folder} into {to}")

    def done(j: job.Job) -> None:
        if isinstance(j.error, (WrongPassword, PasswordRequired)):
            password.ask_or_give_up(guide, TITLE, log, lambda again: _copy(guide, folder, image, path, to, log, again),
                                    f"{j.error.message}. Type it again.")
            return
        r: ExtractResult | None = j.result
        lines = []
        if r is not None:
            lines = [f"From partition {r.partition} of backup {r.image_id}: {r.files} files, {r.dirs} folders, "
                     f"{human(r.bytes)} copied into {r.target}."]
            lines += [f"skipped {p}: {why}" for p, why in r.skipped]
            lines += [f"could not be read: {p}: {why}" for p, why in r.failed]
            for line in lines:
                log.line(line)
            if r.failed:  # as `rescue extract`: everything else was copied, and the exit code says it
                j.error = IntegrityError(detail=f"{len(r.failed)} file(s) of backup {r.image_id} could not be "
                                                f"read; everything else was copied")
        result.show(guide, TITLE, j, lines, ["The files are in the folder named above."])

    job.run(guide, TITLE, log, lambda progress: extract(folder, image.id, lambda: pw, path, to, None, progress), done)
