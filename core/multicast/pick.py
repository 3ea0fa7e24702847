"""Which disk a session client restores onto: the session's rule, then what the disk holds.

Rules: ``largest`` (the largest candidate), ``only`` (there must be exactly one) and ``model=TEXT``
(exactly one whose model contains TEXT, case-insensitively). Candidates are the machine's disks that
are not on USB, not removable and hold nothing mounted, swap or in use (a PC booted from the network
has its own disks only; a stick or the medium it booted from is never chosen), or only those the
caller names. The chosen disk must be blank (no partition-table signature and nothing `blkid`
recognises) or hold the image's own partition table (same disk id: an earlier restore of this image,
say an interrupted one); anything else is refused unless the session says ``force``: a rule picks a
disk blindly, and a room's PCs are not always what the admin thinks they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..disk.device import open_source
from ..disk.discover import DiskSummary, list_disks
from ..errors import Error, TargetRefused, UsageError
from ..partition.detect import read_partition_table
from ..platform.tools import attempt

RULES = ("largest", "only", "model=TEXT")


def check_rule(rule: str) -> str:
    if rule in ("largest", "only") or (rule.startswith("model=") and len(rule) > len("model=")):
        return rule
    raise UsageError(detail=f"--target {rule!r}: use largest, only or model=TEXT")


@dataclass
class Choice:
    path: str
    model: str
    serial: str
    size: int
    holds: str  # "blank", "this image's partition table", or what it holds (when forced)

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "model": self.model, "serial": self.serial, "size": self.size,
                "holds": self.holds}


def candidates(only: list[str] | None) -> list[DiskSummary]:
    disks = list_disks(probe=False)
    if only is not None:
        return [d for d in disks if d.name in only]
    return [d for d in disks if d.bus != "usb" and not d.removable and not d.busy and not d.read_only]


def choose(rule: str, disks: list[DiskSummary]) -> DiskSummary:
    check_rule(rule)
    if not disks:
        raise TargetRefused(target="(none)", detail="this machine has no disk the session may restore onto")
    if rule == "largest":
        return max(disks, key=lambda d: (d.size, d.name))
    if rule.startswith("model="):
        text = rule[len("model="):].lower()
        disks = [d for d in disks if text in d.model.lower()]
    if len(disks) != 1:
        names = ", ".join(f"{d.name} ({d.model or 'no model'})" for d in disks) or "none"
        raise TargetRefused(target="(rule)", detail=f"rule {rule!r} needs exactly one disk, found: {names}")
    return disks[0]


def holds(path: str, image_disk_id: str | None) -> str:
    """'blank', "this image's partition table", or a description of what else the disk holds."""
    found = attempt(["blkid", "-p", "-o", "export", path], timeout=60)
    kinds = [line.split("=", 1)[1] for line in found.stdout.splitlines() if line.startswith(("TYPE=", "PTTYPE="))]
    disk = open_source(path)
    try:
        try:
            table = read_partition_table(disk.reader(), disk.logical_sector_size)
        except Error:
            table = None
    finally:
        disk.close()
    if table is None:
        return f"data ({', '.join(kinds)})" if kinds else "blank"
    if image_disk_id is not None and table.disk_id.lower() == image_disk_id.lower():
        return "this image's partition table"
    return f"another partition table ({table.scheme}, disk id {table.disk_id})"


def pick(rule: str, only: list[str] | None, image_disk_id: str | None, force: bool) -> Choice:
    """The target by ``rule``, refused (`TargetRefused`) when it holds something else, unless ``force``."""
    d = choose(rule, candidates(only))
    what = holds(d.name, image_disk_id)
    if what not in ("blank", "this image's partition table") and not force:
        raise TargetRefused(target=d.name, detail=f"it holds {what}, not a blank disk or this image's layout "
                                                  "(the session's --force overrides)")
    return Choice(d.name, d.model, d.serial, d.size, what)
