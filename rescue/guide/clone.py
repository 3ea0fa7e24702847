"""Copy to a new disk (clone): the source, the target, the plan, the target's name typed, then the job
(`core.engine.clone`, as `rescue clone`). The source is offered as a target too: the engine's own
refusal says why that cannot be done."""

from __future__ import annotations


from core.disk.discover import DiskSummary
from core.engine.clone import ClonePlan, CloneResult, execute_clone, plan_clone

from . import job, result
from .result import written
from .app import Guide
from .confirm import confirm_plan
from .disks import disks, label
from .ui import frame, human, menu, texts

TITLE = "Copy to a new disk (clone)"
NEXT = ["Remove the old disk (or choose the new one in the firmware's boot menu) and restart the PC."]


def start(guide: Guide) -> None:
    from .main_menu import main_menu

    found = disks(guide.disk_files)
    items = [(label(d), lambda d=d: _target(guide, found, d)) for d in found]
    guide.show(frame(TITLE, menu(texts("Which disk should be copied?"), items)), lambda: main_menu(guide))


def _target(guide: Guide, found: list[DiskSummary], source: DiskSummary) -> None:
    items = [(label(d), lambda d=d: _plan(guide, found, source, d)) for d in found]
    intro = texts(f"Copy {source.name} onto which disk? It will be overwritten.")
    guide.show(frame(TITLE, menu(intro, items)),
               lambda: start(guide))


def _plan(guide: Guide, found: list[DiskSummary], source: DiskSummary, target: DiskSummary) -> None:
    log = job.new_log(guide, None, "clone")
    log.line(f"clone of {source.name} onto {target.name}: planning")

    def planned(j: job.Job) -> None:
        if j.error is not None:
            result.refused(guide, TITLE, j.error)
            return
        plan: ClonePlan = j.result
        confirm_plan(guide, TITLE, log, plan, [f"Copy {plan.source_description}"], execute_clone, _report,
                     NEXT, lambda: _target(guide, found, source))

    job.run(guide, "Reading the source", log,
            lambda progress: plan_clone(source.name, target.name, progress), planned)


def _report(r: CloneResult) -> list[str]:
    return [f"{r.source} copied onto {r.target}:",
            written(r),
            *r.actions, *(f"left undone: {p}" for p in r.boot_problems)]
