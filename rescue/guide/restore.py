"""Restore a backup: the backup folder, the restore point, the target disk, the password if needed,
the plan, the target's name typed, then the job (`core.engine.restore`, as `rescue restore`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from core.disk.discover import DiskSummary
from core.engine.repo import ImageEntry, Repository
from core.engine.restore import RestorePlan, RestoreResult, execute_restore, plan_restore
from core.errors import Error, PasswordRequired, WrongPassword

from . import job, password, result
from .app import Guide
from .confirm import confirm_plan
from .disks import disks, label
from .ui import Entry, form, frame, human, menu, texts

TITLE = "Restore a backup"
NEXT = ["Remove the rescue stick and restart the PC from the restored disk."]


@dataclass
class Choice:
    folder: str = ""
    image: ImageEntry | None = None
    target: DiskSummary | None = None
    password: bytes | None = None
    log: job.Log | None = None


def start(guide: Guide, c: Choice | None = None, problem: str = "") -> None:
    from .main_menu import main_menu

    c = c or Choice()

    def chosen(text: str) -> None:
        c.folder = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        try:
            images = [i for i in Repository(c.folder).list_images() if i.complete]
        except Error as e:
            start(guide, c, e.message)
            return
        if not images:
            start(guide, c, f"{c.folder} holds no complete backup.")
            return
        _points(guide, c, images)

    lines = texts(problem, style="error") if problem else []
    lines += texts("Where is the backup? Type its folder (on the backup disk, mounted).")
    guide.show(frame(TITLE, form(lines, Entry("Folder: ", chosen, text=c.folder)), "Enter: next   Esc: back"),
               lambda: main_menu(guide))


def point_label(i: ImageEntry) -> str:
    kind = {"full": "full", "incremental": "changes only", "differential": "changes since full"}.get(i.kind, i.kind)
    return f"{i.time[:19].replace('T', ' ')}  {kind:18} {human(i.bytes):>10}{'  encrypted' if i.encrypted else ''}"


def _points(guide: Guide, c: Choice, images: list[ImageEntry]) -> None:
    def pick(i: ImageEntry) -> None:
        c.image = i
        _target(guide, c, images)

    items = [(point_label(i) + ("  (latest)" if n == 0 else ""), lambda i=i: pick(i))
             for n, i in enumerate(reversed(images))]
    guide.show(frame(TITLE, menu(texts("Which restore point? (date in UTC, kind, size)"), items)),
               lambda: start(guide, c))


def _target(guide: Guide, c: Choice, images: list[ImageEntry]) -> None:
    def pick(d: DiskSummary) -> None:
        c.target = d
        c.log = job.new_log(c.folder, "restore")
        if c.image is not None and c.image.encrypted:
            _ask_password(guide, c, images)
        else:
            _plan(guide, c, images)

    items = [(label(d), lambda d=d: pick(d)) for d in disks(guide.disk_files)]
    guide.show(frame(TITLE, menu(texts("Which disk should be overwritten with this backup?"), items)),
               lambda: _points(guide, c, images))


def _ask_password(guide: Guide, c: Choice, images: list[ImageEntry], problem: str = "") -> None:
    def given(pw: bytes) -> None:
        c.password = pw
        _plan(guide, c, images)

    def give_up() -> None:
        from .main_menu import main_menu

        if c.log is not None:
            c.log.line("gave up at the password: nothing was written")
        body = menu(texts("No password given: nothing was written."),
                    [("Back to the main screen", lambda: main_menu(guide))])
        guide.show(frame(TITLE, body, "Enter: main screen"), lambda: main_menu(guide))

    password.ask(guide, TITLE, "This backup is encrypted: type its password.", given, give_up, problem)


def _plan(guide: Guide, c: Choice, images: list[ImageEntry]) -> None:
    if c.image is None or c.target is None or c.log is None:
        return  # reached only after all three were chosen
    image, folder, target, pw, log = c.image, c.folder, c.target.name, c.password, c.log
    image_id = image.id
    log.line(f"restore of image {image_id} from {folder} onto {target}: checking")

    def planned(j: job.Job) -> None:
        if isinstance(j.error, (WrongPassword, PasswordRequired)):
            _ask_password(guide, c, images, f"{j.error.message}. Type it again.")
        elif j.error is not None:
            result.refused(guide, TITLE, j.error)
        else:
            plan: RestorePlan = j.result
            log.line(f"plan shown: {json.dumps(plan.as_json(), default=str)}")
            confirm_plan(guide, TITLE, log, plan, [f"Restore point {point_label(image)}"], execute_restore,
                         _report, NEXT, lambda: _target(guide, c, images))

    job.run(guide, "Checking the backup", log,
            lambda progress: plan_restore(folder, image_id, target, lambda: pw, progress), planned)


def _report(r: RestoreResult) -> list[str]:
    return [f"Backup {r.image_id} restored onto {r.target}:",
            f"{human(r.written_bytes)} written, {human(r.verified_bytes)} read back and checked in {r.seconds:.0f} s.",
            *r.actions, *(f"left undone: {p}" for p in r.boot_problems)]
