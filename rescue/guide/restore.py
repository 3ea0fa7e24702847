"""Restore a backup: the backup folder, the restore point, the target disk, the password if needed,
the plan, the target's name typed, then the job (`core.engine.restore`, as `rescue restore`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.disk.discover import DiskSummary
from core.engine.repo import ImageEntry
from core.engine.restore import RestorePlan, RestoreResult, execute_restore, plan_restore
from core.errors import PasswordRequired, WrongPassword

from . import job, password, result
from .result import written
from .app import Guide
from .confirm import confirm_plan
from .disks import disks, label
from .points import choose_point, point_label
from .ui import frame, human, menu, texts

TITLE = "Restore a backup"
NEXT = ["Remove the rescue stick and restart the PC from the restored disk."]


@dataclass
class Choice:
    folder: str = ""
    image: ImageEntry | None = None
    password: bytes | None = None


def start(guide: Guide, c: Choice | None = None) -> None:
    from .main_menu import main_menu

    c = c or Choice()

    def pointed(folder: str, image: ImageEntry) -> None:
        c.folder, c.image = folder, image
        _target(guide, c, image)

    choose_point(guide, TITLE, c.folder, pointed, lambda: main_menu(guide))


def _target(guide: Guide, c: Choice, image: ImageEntry) -> None:
    def pick(d: DiskSummary) -> None:
        log = job.new_log(guide, c.folder, "restore")
        if image.encrypted:
            _ask_password(guide, c, image, d, log)
        else:
            _plan(guide, c, image, d, log)

    items = [(label(d), lambda d=d: pick(d)) for d in disks(guide.disk_files)]
    guide.show(frame(TITLE, menu(texts("Which disk should be overwritten with this backup?"), items)),
               lambda: start(guide, c))


def _ask_password(guide: Guide, c: Choice, image: ImageEntry, target: DiskSummary, log: job.Log,
                  problem: str = "") -> None:
    def given(pw: bytes) -> None:
        c.password = pw
        _plan(guide, c, image, target, log)

    password.ask_or_give_up(guide, TITLE, log, given, problem)


def _plan(guide: Guide, c: Choice, image: ImageEntry, target: DiskSummary, log: job.Log) -> None:
    folder, pw = c.folder, c.password
    log.line(f"restore of image {image.id} from {folder} onto {target.name}: checking")

    def planned(j: job.Job) -> None:
        if isinstance(j.error, (WrongPassword, PasswordRequired)):
            _ask_password(guide, c, image, target, log, f"{j.error.message}. Type it again.")
        elif j.error is not None:
            result.refused(guide, TITLE, j.error)
        else:
            plan: RestorePlan = j.result
            log.line(f"plan shown: {json.dumps(plan.as_json(), default=str)}")
            confirm_plan(guide, TITLE, log, plan, [f"Restore point {point_label(image)}"], execute_restore,
                         _report, NEXT, lambda: _target(guide, c, image))

    job.run(guide, "Checking the backup", log,
            lambda progress: plan_restore(folder, image.id, target.name, lambda: pw, progress), planned)


def _report(r: RestoreResult) -> list[str]:
    return [f"Backup {r.image_id} restored onto {r.target}:",
            written(r),
            *r.actions, *(f"left undone: {p}" for p in r.boot_problems)]
