"""`adapt_disk`: fit the Windows on a disk to a disk controller, offline (what `rescue adapt` runs).

Order: read the SYSTEM hive (`hivefiles.load_hive`, for editing: a dirty hive or a hibernated Windows
is left alone and reported as a problem, exit 102), choose the driver from ``--drivers`` if given
(`core.drivers.inf`), plan every hive value (`adapt.plan_adapt`) and every driver file, refuse what
cannot be done safely, and only then write: the driver files into ``\\Windows\\System32\\drivers``
first (a service whose file is missing would not start), then the hive, replaced atomically with a
copy kept beside it. The files are reached as a folder (`core.repair.volumes.open_volume`): ntfs-3g's
mount on Linux, the volume Windows mounted on Windows (WinPE), flushed before this returns. A driver
file already there is replaced only by a newer version (PE version resource); equal bytes are left as
they are; without a version on either side it is refused.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..disk.controller import Controller
from ..disk.device import check_target_path, open_source
from ..drivers.inf import DriverChoice, Inf, Target, find_device
from ..drivers.pever import file_version
from ..errors import FormatError, SourceError, UnsupportedError, UsageError
from ..regf.writer import HiveWriter
from .adapt import AdaptPlan, apply_edits, plan_adapt, windows_info
from .hivefiles import load_hive, save_hive
from .layout import DiskLayout, PartState
from .volumes import open_volume

SYSTEM_HIVE = "Windows/System32/config/SYSTEM"
DRIVERS = "Windows/System32/drivers"
# A driver folder holds one driver or a vendor's pack of a few dozen; more INFs than this means a
# wrong folder (a whole disk, a Windows install) and would take long to parse for nothing.
MAX_INFS = 500
# A storage driver's .sys is well under 10 MiB; the cap keeps a wrong file from being read whole.
MAX_DRIVER_FILE = 64 << 20


@dataclass
class FileCopy:
    name: str
    source: str
    action: str  # "copy" (absent), "replace" (older there), "keep" (same bytes or newer there)
    old_version: str | None = None
    new_version: str | None = None


@dataclass
class AdaptReport:
    disk: str
    dry_run: bool
    controller: dict[str, Any]
    windows_partition: int | None = None
    windows: dict[str, Any] = field(default_factory=dict)
    driver: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)  # hive, key, value, type, old, new
    files: list[FileCopy] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"disk": self.disk, "dry_run": self.dry_run, "controller": self.controller,
                "windows_partition": self.windows_partition, "windows": self.windows, "driver": self.driver,
                "changes": self.changes, "files": [vars(f) for f in self.files], "backups": self.backups,
                "notes": self.notes, "problems": self.problems, "ok": not self.problems}


def choose_driver(folder: str, ctl: Controller, target: Target) -> DriverChoice:
    """The device install in ``folder``'s INFs for the controller's most specific id (first INF on a tie)."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(detail=f"--drivers {folder}: not a folder")
    infs = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".inf" and p.is_file())
    if len(infs) > MAX_INFS:
        raise UsageError(detail=f"--drivers {folder} holds {len(infs)} INF files, over {MAX_INFS}: "
                                "give the folder of the one driver")
    if not infs:
        raise UsageError(detail=f"--drivers {folder} holds no .inf file")
    by_name: dict[str, list[Path]] = {}
    for path in infs:
        by_name.setdefault(path.name.lower(), []).append(path)

    def include(name: str, inf: Inf, number: int) -> Inf:
        """An INF that Include= names, from anywhere in the folder: a Windows INF (mshdc.inf, pci.inf) is
        not read from the target Windows, the user puts a copy of it beside the driver."""
        found = by_name.get(name.lower(), [])
        if not found:
            raise inf.error(number, f"Include={name}: {name} is not in {folder}; it is needed to install this "
                                    f"driver (a Windows INF: copy \\Windows\\INF\\{name} of the same Windows there)")
        if len(found) > 1:
            raise inf.error(number, f"Include={name}: {folder} holds {len(found)} files named {name} "
                                    f"({found[0]}, {found[1]}): keep one")
        return Inf(found[0])

    ids = ctl.ids
    best: tuple[int, DriverChoice] | None = None
    for path in infs:
        inf = Inf(path)
        if inf.is_windows_inf:
            # its files are on every Windows, not beside it: a copy in the folder is there to be included
            # by the driver (Include=), not installed as a driver itself
            continue
        choice = find_device(inf, target, ids, include)
        if choice is not None:
            rank = ids.index(choice.hardware_id) if choice.hardware_id in ids else len(ids)
            if best is None or rank < best[0]:
                best = (rank, choice)
    if best is None:
        raise UnsupportedError(detail=f"no driver in {folder} matches {ids[0]} for Windows "
                                      f"{'7' if target.version == (6, 1) else '8+'} {target.arch}")
    return best[1]


def _version_text(v: tuple[int, int, int, int] | None) -> str | None:
    return ".".join(str(x) for x in v) if v else None


def _plan_files(files: Any, driver: DriverChoice, where: str) -> list[FileCopy]:
    out = []
    for name, src in driver.files:
        if src.stat().st_size > MAX_DRIVER_FILE:
            raise UnsupportedError(detail=f"{src} is over {MAX_DRIVER_FILE} bytes: not a storage driver")
        new = src.read_bytes()
        dest = f"{DRIVERS}/{name}"
        new_v = file_version(new, str(src))
        if not files.exists(dest):
            out.append(FileCopy(name, str(src), "copy", None, _version_text(new_v)))
            continue
        old = files.read(dest)
        old_v = file_version(old, f"{where}\\{name}")
        if old == new:
            out.append(FileCopy(name, str(src), "keep", _version_text(old_v), _version_text(new_v)))
        elif old_v is None or new_v is None:
            raise UnsupportedError(detail=f"{where}\\{name} exists and differs from {src}, and "
                                          f"{'it' if old_v is None else 'the new one'} has no version resource: "
                                          "refusing to overwrite a driver whose age is unknown")
        elif new_v > old_v:
            out.append(FileCopy(name, str(src), "replace", _version_text(old_v), _version_text(new_v)))
        else:
            out.append(FileCopy(name, str(src), "keep", _version_text(old_v), _version_text(new_v)))
    for name, inf_name in driver.system_files:
        # a file of an included Windows INF that is not beside that INF: Windows' own driver, which a
        # Windows that has the INF has installed; one that is missing cannot be supplied from here
        dest = f"{DRIVERS}/{name}"
        if not files.exists(dest):
            raise UnsupportedError(detail=f"{name} (copied by {inf_name}, which the driver includes) is neither in "
                                          f"the driver folder nor in {where}: give it with the driver")
        out.append(FileCopy(name, f"this Windows (its own driver, copied by {inf_name})", "keep"))
    return out


def _windows(layout: DiskLayout, path: str) -> PartState:
    if len(layout.windows) == 1:
        return layout.windows[0]
    if not layout.windows:
        raise UnsupportedError(detail=f"no Windows partition (\\Windows\\System32\\winload.exe) on {path}")
    numbers = ", ".join(str(s.number) for s in layout.windows)
    raise UnsupportedError(detail=f"Windows on partitions {numbers} of {path}: adapt handles one Windows per disk")


def adapt_disk(path: str, ctl: Controller, *, drivers: str | None = None, dry_run: bool,
               sector_size: int | None = None) -> AdaptReport:
    """Plan (and unless ``dry_run``, write) what the Windows on ``path`` needs to start from ``ctl``."""
    if not dry_run:
        # refuse, before anything is written, a disk in use (Linux: mounted, held; Windows: the running
        # Windows', WinPE's medium, a page file in use: there its volumes are mounted, and written through)
        check_target_path(path, sources=[])
    disk = open_source(path, sector_size)
    try:
        layout = DiskLayout(disk, disk.logical_sector_size, path=path)
    finally:
        disk.close()
    report = AdaptReport(path, dry_run, ctl.as_json())
    win = _windows(layout, path)
    report.windows_partition = win.number
    where = f"partition {win.number}:\\{SYSTEM_HIVE.replace('/', chr(92))}"
    drivers_where = f"partition {win.number}:\\{DRIVERS.replace('/', chr(92))}"
    if win.usage.hibernated:
        # never written (ntfs-3g mounts it read-only only; on Windows what is written would be lost or
        # clash at resume); a dry run says so too rather than promise changes
        report.problems.append(f"{where} not adapted: partition {win.number}: Windows is hibernated (or was shut "
                               "down with Fast Startup); boot Windows and shut it down fully first")
        return report
    stack = contextlib.ExitStack()
    try:
        files = stack.enter_context(open_volume(path, win.start, win.part.size, win.number, win.fs,
                                                readonly=dry_run))
        hive = load_hive(files, SYSTEM_HIVE, where, for_edit=True)
    except (UnsupportedError, FormatError, SourceError) as e:
        # a dirty hive, a hibernated Windows, an unreadable hive: left alone and reported (exit 102),
        # as boot repair does; nothing was written
        stack.close()
        report.problems.append(f"{where} not adapted: {e.message}")
        return report
    except BaseException:  # anything else (Ctrl-C, I/O): unmount and detach before it goes on
        stack.close()
        raise
    with stack:
        info = windows_info(hive)
        report.windows = {"family": info.family, "arch": info.arch, "control_sets": list(info.control_sets),
                          "version": ".".join(map(str, info.version)) if info.version else None}
        driver = choose_driver(drivers, ctl, info.target) if drivers else None
        if driver is not None:
            report.driver = {"inf": str(driver.inf), "description": driver.description,
                             "hardware_id": driver.hardware_id, "install_section": driver.install_section,
                             "services": [s.name for s in driver.services], "class_guid": driver.class_guid,
                             "included": [str(p) for p in driver.included]}
            report.notes += [f"{driver.inf}: {n} is not for \\Windows\\System32\\drivers: not copied"
                             for n in driver.skipped_files]
        plan: AdaptPlan = plan_adapt(hive, ctl, driver)
        report.files = _plan_files(files, driver, drivers_where) if driver else []
        report.notes += plan.notes
        report.problems += plan.problems
        report.changes = [{"hive": where, **e.as_json()} for e in plan.edits]
        if dry_run:
            return report
        if driver is not None:
            sources = dict((n, s) for n, s in driver.files)
            for f in report.files:
                if f.action != "keep":
                    bak = files.replace(f"{DRIVERS}/{f.name}", sources[f.name].read_bytes())
                    if bak:
                        report.backups.append(f"partition {win.number}:{bak}")
        if plan.edits:
            writer = HiveWriter(hive)
            apply_edits(writer, plan.edits)
            logs: list[str] = []  # a hive replayed from its logs: the copies kept of the emptied logs
            bak = save_hive(files, SYSTEM_HIVE, writer, kept_logs=logs)
            report.backups += [f"partition {win.number}:{b}" for b in [bak, *logs] if b]
    return report


@dataclass(frozen=True)
class AdaptRequest:
    """``--adapt`` of a restore or clone: run `adapt_disk` on the target as the last step."""

    controller: Controller
    drivers: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"controller": self.controller.as_json(), "drivers": self.drivers}


def adapt_written_disk(path: str, request: AdaptRequest) -> tuple[list[str], list[str]]:
    """Adapt a just restored or cloned disk; (what was done, what was left undone) as text lines.

    The restore or clone itself is complete by now, so a refusal here (Windows 7 onto NVMe without a
    driver, no driver in the folder for the controller) is what was left undone, not the command's error.
    """
    try:
        report = adapt_disk(path, request.controller, drivers=request.drivers, dry_run=False)
    except (UnsupportedError, FormatError, UsageError) as e:
        return [], [f"adapt not done (run `rescue adapt` once this is solved): {e.message}"]
    actions = [f"adapt: {f.name} ({f.action})" for f in report.files if f.action != "keep"]
    actions += [f"adapt: {c['key']} {c['value']}: {c['old']!r} -> {c['new']!r}" for c in report.changes]
    actions += [f"kept a copy: {b}" for b in report.backups]
    return actions, report.problems
