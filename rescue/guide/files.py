"""Take files out of a backup: the restore point, the password if needed, the file or folder picked
by browsing the image (`browse`) and the folder to copy into (typed), then `rescue.mount.extract.extract`
as `rescue extract` does it: never writes outside that folder, keeps timestamps, lists what it could
not read."""

from __future__ import annotations

import os

from core.engine.repo import ImageEntry
from core.errors import IntegrityError, PasswordRequired, WrongPassword
from rescue.mount.extract import ExtractResult, extract

from . import browse, job, password, result
from .app import Guide
from .points import choose_point
from .ui import Entry, form, frame, human, texts

TITLE = "Take files out of a backup"
KEYS = "Enter: next   Esc: back"


def start(guide: Guide, folder: str = "") -> None:
    from .main_menu import main_menu

    choose_point(guide, TITLE, folder, lambda f, image: _password(guide, f, image), lambda: main_menu(guide))


def _password(guide: Guide, folder: str, image: ImageEntry) -> None:
    log = job.new_log(guide, folder, "files")
    if image.encrypted:
        password.ask_or_give_up(guide, TITLE, log, lambda pw: _open(guide, folder, image, log, pw))
    else:
        _open(guide, folder, image, log, None)


def _open(guide: Guide, folder: str, image: ImageEntry, log: job.Log, pw: bytes | None) -> None:
    """Mount the image to browse it; a wrong password is asked again before anything is shown."""
    def opened(j: job.Job) -> None:
        if isinstance(j.error, (WrongPassword, PasswordRequired)):
            password.ask_or_give_up(guide, TITLE, log, lambda again: _open(guide, folder, image, log, again),
                                    f"{j.error.message}. Type it again.")
        elif j.error is not None:
            result.refused(guide, TITLE, j.error)
        else:
            browse.Browser(guide, TITLE, j.result, lambda number, path: _where(guide, folder, image, log, pw,
                                                                                number, path),
                           lambda: start(guide, folder)).partitions()

    job.run(guide, "Opening the backup", log, lambda _progress: browse.mount(folder, image.id, pw, log.path),
            opened)


def _where(guide: Guide, folder: str, image: ImageEntry, log: job.Log, pw: bytes | None, number: int,
           path: str, problem: str = "") -> None:
    def chosen(text: str) -> None:
        to = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        if not to:
            _where(guide, folder, image, log, pw, number, path, "Type the folder to copy into.")
            return
        _copy(guide, folder, image, number, path, to, log, pw)

    lines = texts(problem, style="error") if problem else []
    lines += texts(f"Take out: partition {number}: /{path}",
                   "Copy into which folder? (on another disk, mounted; created if it does not exist)")
    guide.show(frame(TITLE, form(lines, Entry("Into: ", chosen)), KEYS),
               lambda: _open(guide, folder, image, log, pw))


def _copy(guide: Guide, folder: str, image: ImageEntry, number: int, path: str, to: str, log: job.Log,
          pw: bytes | None) -> None:
    log.line(f"copy partition {number}: /{path} of image {image.id} from {folder} into {to}")

    def done(j: job.Job) -> None:
        r: ExtractResult | None = j.result
        lines = []
        if r is not None:
            lines = [f"From partition {r.partition} of backup {r.image_id}: {r.files} files, {r.dirs} "
                     f"folders, {human(r.bytes)} copied into {r.target}."]
            lines += [f"skipped {p}: {why}" for p, why in r.skipped]
            lines += [f"could not be read: {p}: {why}" for p, why in r.failed]
            for line in lines:
                log.line(line)
            if r.failed:  # as `rescue extract`: everything else was copied, and the exit code says it
                j.error = IntegrityError(detail=f"{len(r.failed)} file(s) of backup {r.image_id} could not "
                                                "be read; everything else was copied")
        result.show(guide, TITLE, j, lines, ["The files are in the folder named above."])

    job.run(guide, TITLE, log,
            lambda progress: extract(folder, image.id, lambda: pw, path, to, number, progress), done,
            job.STOP_COPY)
