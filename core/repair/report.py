"""What a boot repair did or would do: the report the CLI prints and the restore/clone code inspects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Area = Literal["boot-record", "bcd", "letters"]


@dataclass(frozen=True)
class Change:
    """One changed field: ``where`` (e.g. ``{bootmgr} device (11000001)``), ``old`` -> ``new``.

    ``partition``: the partition number the new value points to (BCD, letters) or that was written
    (boot records); ``file``: the file changed, as ``partition N:\\path`` (BCD, letters).
    """

    area: Area
    where: str
    old: str
    new: str
    partition: int | None = None
    file: str | None = None
    reason: str = ""


@dataclass
class RepairReport:
    """Result of `core.repair.repair_disk` / `rebuild_disk_bcd`.

    ``problems`` are things left undone that the user must look at (dirty hive, BitLocker boot sector,
    a device that still points nowhere); ``notes`` are informational. ``backups`` lists the copies kept
    of every rewritten file (``partition N:\\path``).
    """

    disk: str
    scheme: str
    firmware: str
    dry_run: bool
    boot_partition: int | None
    windows_partitions: list[int]
    store: str | None = None
    changes: list[Change] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_area(self, area: Area) -> list[Change]:
        return [c for c in self.changes if c.area == area]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


@dataclass
class ShowReport:
    """Result of `core.repair.show_disk`: every boot entry and drive letter, decoded and resolved."""

    disk: str
    scheme: str
    firmware: str
    disk_id: str
    partitions: list[dict[str, Any]]
    boot_partition: int | None
    windows_partitions: list[int]
    store: str | None
    objects: list[dict[str, Any]] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # e.g. a dirty hive read as recovered from its logs

    @property
    def all_resolve(self) -> bool:
        """Every device of every element, and every drive letter (``\\DosDevices\\X:``) naming a
        partition, points to a partition of this disk. Letter-less ``Volume{…}`` values are not counted:
        they also remember volumes of other disks seen once."""
        devices_ok = all(d["resolves"] for o in self.objects for e in o["elements"] for d in e["devices"])
        return devices_ok and all(x["resolves"] for x in self.letters if x["kind"] != "other" and x["letter"])

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["all_resolve"] = self.all_resolve
        return out
