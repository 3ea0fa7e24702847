"""`prune`: keep the restore points a retention policy names, and everything they depend on.

Policy (as restic's ``forget``): ``keep_last`` newest points; ``keep_daily``/``keep_weekly``/
``keep_monthly``: the newest point of each of the last N days/ISO weeks/months that have one.
Kept points bring their whole chain along; incomplete images (unfinished backups) are removed too.
Deletion goes newest first, manifest first, so a kill never leaves an image whose parent is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ..errors import UsageError
from .lifecycle import closure, remove_images
from .repo import ImageEntry, Repository


@dataclass
class Policy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def empty(self) -> bool:
        return not (self.keep_last or self.keep_daily or self.keep_weekly or self.keep_monthly)


@dataclass
class PruneResult:
    keep: list[str]
    keep_reasons: dict[str, list[str]]
    delete: list[str]
    dry_run: bool
    deleted: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"keep": self.keep, "reasons": self.keep_reasons, "delete": self.delete, "dry_run": self.dry_run,
                "deleted": self.deleted}


def _bucket(entry: ImageEntry, kind: str) -> str:
    t = datetime.fromisoformat(entry.time)
    if kind == "daily":
        return t.strftime("%Y-%m-%d")
    if kind == "weekly":
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"
    return t.strftime("%Y-%m")


def choose(images: list[ImageEntry], policy: Policy) -> dict[str, list[str]]:
    """Point id -> reasons it is kept (only complete images are points)."""
    points = sorted((i for i in images if i.complete), key=lambda i: (i.time, i.id), reverse=True)
    reasons: dict[str, list[str]] = {}
    for i in points[:policy.keep_last]:
        reasons.setdefault(i.id, []).append("last")
    for kind, n in (("daily", policy.keep_daily), ("weekly", policy.keep_weekly), ("monthly", policy.keep_monthly)):
        seen: list[str] = []
        for i in points:
            b = _bucket(i, kind)
            if b in seen:
                continue
            if len(seen) >= n:
                break
            seen.append(b)
            reasons.setdefault(i.id, []).append(f"{kind} {b}")
    return reasons


def prune(folder: str, policy: Policy, dry_run: bool, confirm: Callable[[PruneResult], None] | None = None) -> PruneResult:
    if policy.empty():
        raise UsageError(detail="prune needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly")
    repo = Repository(folder)
    with repo.lock():
        images = repo.list_images()
        by_id = {i.id: i for i in images}
        reasons = choose(images, policy)
        keep = closure(by_id, reasons)
        for image_id in keep - set(reasons):
            reasons[image_id] = ["needed by a kept image"]
        delete = [i.id for i in images if i.id not in keep]
        result = PruneResult(sorted(keep), reasons, delete, dry_run)
        if dry_run or not delete:
            return result
        if confirm is not None:
            confirm(result)
        result.deleted = remove_images(repo, images, set(delete))
    return result
