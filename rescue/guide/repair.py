"""Repair Windows startup: the disk, what the repair would change (a dry run of `core.repair.repair_disk`,
as `rescue fix-boot --dry-run`), the disk's name typed, then the repair itself and what it changed."""

from __future__ import annotations

from typing import Any

from core.disk.discover import DiskSummary
from core.errors import BootRepairWarning
from core.repair import RepairReport, repair_disk

from ..commands.bootreport import AREA_TITLES
from . import job, result
from .app import Guide
from .confirm import confirm
from .disks import disks, label
from .ui import frame, menu, texts

TITLE = "Repair Windows startup"
NEXT = ["Remove the rescue stick and restart the PC."]


def start(guide: Guide) -> None:
    from .main_menu import main_menu

    items = [(label(d), lambda d=d: _check(guide, d)) for d in disks(guide.disk_files)]
    guide.show(frame(TITLE, menu(texts("Which disk holds the Windows that does not start?"), items)),
               lambda: main_menu(guide))


def changes(report: RepairReport) -> list[str]:
    """What the repair changed (or would), counted per area to fit the screen (every field is in the
    log), then what it leaves to the user."""
    counts = [f"{len(report.by_area(area))} in the {title}"  # type: ignore[arg-type]
              for area, title in AREA_TITLES.items() if report.by_area(area)]  # type: ignore[arg-type]
    out = [", ".join(counts) if counts else "nothing: everything already points where it should"]
    out += [f"note: {n}" for n in report.notes]
    out += [f"left undone: {p}" for p in report.problems]
    return out


def _log_changes(log: job.Log, report: RepairReport) -> None:
    for c in report.changes:
        log.line(f"{'would change' if report.dry_run else 'changed'} {c.where}: {c.old} -> {c.new}")


def _check(guide: Guide, disk: DiskSummary) -> None:
    log = job.new_log(guide, None, "repair")
    log.line(f"boot repair of {disk.name}: checking")

    def checked(j: job.Job) -> None:
        if j.error is not None:
            result.refused(guide, TITLE, j.error)
            return
        report: RepairReport = j.result
        _log_changes(log, report)
        lines = texts(f"Windows on {disk.name}: {report.scheme.upper()} disk, "
                      f"{report.firmware.upper()} boot.",
                      "The repair would change:", *changes(report), "(every change is listed in the log)")
        if not report.changes:
            body = menu(lines, [("Back to the main screen", lambda: start(guide))])
            guide.show(frame(TITLE, body), lambda: start(guide))
            return
        confirm(guide, TITLE, disk.name, f"THE BOOT RECORDS, BCD STORE AND DRIVE LETTERS OF {disk.name} WILL "
                "BE CHANGED (copies of the files are kept).", lines, lambda: _repair(guide, disk, log),
                lambda: start(guide))

    job.run(guide, "Checking Windows startup", log, lambda _progress: repair_disk(disk.name, dry_run=True),
            checked)


def _repair(guide: Guide, disk: DiskSummary, log: job.Log) -> None:
    log.line(f"confirmed: repairing {disk.name}")

    def done(j: job.Job) -> None:
        report: Any = j.result
        if report is not None:
            _log_changes(log, report)
        lines = [] if report is None else [f"Startup of the Windows on {disk.name} repaired:",
                                           *(c for c in changes(report) if not c.startswith("left undone"))]
        left = [] if report is None else [BootRepairWarning(detail=p) for p in report.problems]
        result.show(guide, TITLE, j, lines, NEXT, warnings=left)

    job.run(guide, TITLE, log, lambda _progress: repair_disk(disk.name, dry_run=False), done, job.STOP_REPAIR)
