"""Offline boot repair of a Windows disk: the API restore/clone call after laying out partitions.

`repair_disk` runs, in this order: boot records (new disk signature if asked, MBR boot code, active
flag, hidden sectors: `bootrecords`), the BCD device rewrite (`bcdfix`), then MountedDevices in the
SYSTEM hive of each Windows found (`letters`). `rebuild_disk_bcd` writes a fresh store from the
Windows' BCD-Template (`rebuild`). `show_disk` reads only. With ``dry_run=True`` everything is computed
and reported, volumes are mounted read-only and nothing is written.

Every hive rewritten keeps a copy next to it (``NAME.rescue-bak-STAMP``) and is replaced atomically.
A dirty hive is replayed from its logs first (`hivefiles`), and that is noted; refusals that concern
one part (a dirty hive whose logs cannot be replayed, a hibernated Windows, a BitLocker boot sector)
are reported in ``problems`` and the rest of the repair goes on.
"""

from __future__ import annotations

from ..bcd.mounteddevices import OtherVolume, drive_letters, mounted_devices, rewrite_mounted_devices
from ..bcd.store import BcdStore
from ..disk.device import Disk, open_source, open_target
from ..disk.safety import check_target
from ..errors import FormatError, SourceError, UnsupportedError
from ..regf.hive import Hive
from ..regf.writer import HiveWriter
from ..windows.roles import BIOS_BCD, BOOTMGFW, BOOTMGR, EFI_BCD, is_esp
from .bcdfix import BcdChange, apply_bcd, identity_text, plan_bcd, view_store
from .bootrecords import apply_boot_records, plan_boot_records
from .hivefiles import load_hive, save_hive
from .layout import FAT_KINDS, DiskLayout, PartState
from .letters import plan_letters, resolve_volume, volume_text
from .rebuild import rebuild_store
from .report import Change, RepairReport, ShowReport
from .volumes import VolumeFiles, open_volume

SYSTEM_HIVE = "Windows/System32/config/SYSTEM"
TEMPLATE = "Windows/System32/config/BCD-Template"
_SOFT = (UnsupportedError, FormatError, SourceError)  # one part refused; the rest of the repair goes on


def _open(path: str, sector_size: int | None, new_signature: int | None) -> tuple[Disk, DiskLayout]:
    disk = open_source(path, sector_size)
    try:
        return disk, DiskLayout(disk, disk.logical_sector_size, path=path, new_signature=new_signature)
    except BaseException:
        disk.close()
        raise


def _report(path: str, layout: DiskLayout, dry_run: bool) -> RepairReport:
    return RepairReport(disk=path, scheme=layout.scheme, firmware=layout.firmware, dry_run=dry_run,
                        boot_partition=layout.boot.number if layout.boot else None,
                        windows_partitions=[s.number for s in layout.windows])


def _file(s: PartState, rel: str) -> str:
    return f"partition {s.number}:\\{rel.replace('/', chr(92))}"


def _replayed(hive: Hive, where: str, *, editing: bool = False) -> list[str]:
    """The note for a hive that was dirty and was read as recovered from its logs (none otherwise)."""
    if hive.recovery is None:
        return []
    then = ("; written back (its logs emptied, copies kept) only if the repair changes it, else Windows "
            "replays the same logs at its next start") if editing else ""
    return [f"{where} was dirty: read as recovered from its logs ({hive.recovery.summary}){then}"]


def _save(files: VolumeFiles, rel: str, writer: HiveWriter, number: int, report: RepairReport) -> None:
    """Save through `hivefiles.save_hive` and list every copy kept (the hive's, and its logs')."""
    logs: list[str] = []
    bak = save_hive(files, rel, writer, kept_logs=logs)
    report.backups += [f"partition {number}:{b}" for b in [bak, *logs] if b]


def repair_disk(path: str, *, dry_run: bool, new_signature: int | None = None, boot_records: bool = True,
                bcd: bool = True, letters: bool = True, sector_size: int | None = None) -> RepairReport:
    """Make the Windows on disk ``path`` bootable where it now lies; return what changed (or would).

    ``new_signature`` (MBR only) gives the disk a new signature first, and everything is pointed at it.
    ``boot_records``/``bcd``/``letters`` select the parts (``rescue bcd repair`` = bcd + letters).
    """
    if new_signature is not None and not 0 < new_signature <= 0xFFFFFFFF:
        raise UnsupportedError(detail=f"disk signature {new_signature:#x} must be 1..0xffffffff (0 means none)")
    if not dry_run:
        check_target(path, [], [])  # refuse a disk in use (mounted, held) before anything is written
    disk, layout = _open(path, sector_size, new_signature)
    try:
        report = _report(path, layout, dry_run)
        plan = plan_boot_records(layout, disk)
        if not boot_records:  # the signature is not optional once asked for: everything below uses it
            plan.changes = [c for c in plan.changes if c.where == "MBR disk signature"]
            plan.problems, plan.notes = [], []
        report.changes += [Change("boot-record", c.where, c.old, c.new) for c in plan.changes]
        report.problems += plan.problems
        report.notes += plan.notes
        if plan.changes and not dry_run:
            with open_target(path, sources=[], required_size=0, sector_size=layout.sector_size) as target:
                apply_boot_records(target, plan)
        bcd_changes: list[BcdChange] = []
        if bcd:
            bcd_changes = _repair_bcd(path, layout, report, dry_run)
        if letters:
            for win in layout.windows:
                _repair_letters(path, layout, win, bcd_changes, report, dry_run)
            if not layout.windows:
                report.problems.append("no Windows partition (\\Windows\\System32\\winload.exe) found: "
                                       "no drive letters to repair")
        return report
    finally:
        disk.close()


def _repair_bcd(path: str, layout: DiskLayout, report: RepairReport, dry_run: bool) -> list[BcdChange]:
    boot = layout.boot
    loc = layout.bcd_location(boot) if boot is not None else None
    if boot is None or loc is None:
        report.problems.append("no boot partition with a BCD store (\\Boot\\BCD or \\EFI\\Microsoft\\Boot\\BCD) "
                               "found; `rescue bcd rebuild` can create one")
        return []
    report.store = _file(boot, loc)
    try:
        with open_volume(path, boot.start, boot.part.size, boot.number, boot.fs, readonly=dry_run) as files:
            store = BcdStore(load_hive(files, loc, report.store, for_edit=True))
            report.notes += _replayed(store.hive, report.store, editing=True)
            plan = plan_bcd(store, layout)
            for c in plan.changes:
                who = c.object_alias or "{" + c.object_guid + "}"
                if c.description and not c.object_alias:
                    who += f" ({c.description})"
                report.changes.append(Change("bcd", f"{who} {c.element_name} ({c.element:08x})",
                                             identity_text(c.old), identity_text(c.new), c.partition,
                                             report.store, c.reason))
            report.problems += plan.unresolved
            if plan.writes and not dry_run:
                apply_bcd(store, plan)
                _save(files, loc, store.writer, boot.number, report)
            return plan.changes
    except _SOFT as e:
        report.problems.append(f"BCD store {report.store} not repaired: {e.message}")
        return []


def _repair_letters(path: str, layout: DiskLayout, win: PartState, bcd_changes: list[BcdChange],
                    report: RepairReport, dry_run: bool) -> None:
    where = _file(win, SYSTEM_HIVE)
    try:
        with open_volume(path, win.start, win.part.size, win.number, win.fs, readonly=dry_run) as files:
            hive = load_hive(files, SYSTEM_HIVE, where, for_edit=True)
            report.notes += _replayed(hive, where, editing=True)
            plan = plan_letters(hive, layout, win, bcd_changes)
            report.notes += [f"{where}: {x}" for x in plan.left]
            if not plan.mapping:
                if not any(resolve_volume(layout, v) is win for v in drive_letters(hive).values()):
                    report.notes.append(f"{where}: no drive letter names partition {win.number}; Windows will "
                                        "assign one at the next boot")
                return
            writer = HiveWriter(hive)
            for mc in rewrite_mounted_devices(writer, plan.mapping):
                report.changes.append(Change("letters", mc.name, volume_text(mc.old), volume_text(mc.new),
                                             plan.targets.get(mc.name), where))
            if not dry_run:
                _save(files, SYSTEM_HIVE, writer, win.number, report)
    except _SOFT as e:
        report.problems.append(f"drive letters in {where} not repaired: {e.message}")


# --- rebuild ------------------------------------------------------------------------------------------


def _rebuild_target(layout: DiskLayout, win: PartState) -> PartState:
    """Where the new store goes: the boot partition, else the ESP (GPT), else the active partition."""
    if layout.boot is not None:
        return layout.boot
    fs_ok = [s for s in layout.parts if s.fs == "ntfs" or s.fs in FAT_KINDS]
    if layout.scheme == "gpt":
        esp = next((s for s in fs_ok if is_esp(s.part.type_id)), None)
        if esp is not None:
            return esp
    active = next((s for s in fs_ok if s.part.bootable), None)
    return active if active is not None else win


def rebuild_disk_bcd(path: str, *, dry_run: bool, windows: int | None = None,
                     sector_size: int | None = None) -> RepairReport:
    """Replace the store with a fresh one from the Windows' ``BCD-Template`` (like bcdboot)."""
    if not dry_run:
        check_target(path, [], [])
    disk, layout = _open(path, sector_size, None)
    try:
        report = _report(path, layout, dry_run)
        if windows is not None:
            win = layout.by_number(windows)
            if win is None or win not in layout.windows:
                raise UnsupportedError(detail=f"partition {windows} of {path} holds no Windows")
        elif len(layout.windows) == 1:
            win = layout.windows[0]
        elif not layout.windows:
            raise UnsupportedError(detail=f"no Windows partition (\\Windows\\System32\\winload.exe) on {path}")
        else:
            numbers = ", ".join(str(s.number) for s in layout.windows)
            raise UnsupportedError(detail=f"Windows on partitions {numbers}: say which one with --windows N")
        target = _rebuild_target(layout, win)
        uefi = is_esp(target.part.type_id) or (layout.scheme == "gpt" and target.fs in FAT_KINDS)
        report.firmware = "uefi" if uefi else "bios"
        loc = EFI_BCD if uefi else BIOS_BCD
        report.store = _file(target, loc)
        with open_volume(path, win.start, win.part.size, win.number, win.fs, readonly=True) as files:
            template = files.read(TEMPLATE)
        boot_id, win_id = layout.identity(target), layout.identity(win)
        result = rebuild_store(template, boot=boot_id, windows=win_id, uefi=uefi)
        report.notes += [f"dropped from the template copy: {d}" for d in result.dropped]
        loader = "{" + result.loader + "}"
        store_file = report.store
        report.changes += [
            Change("bcd", "store", "previous store" if layout.bcd_location(target) == loc else "absent",
                   f"new store from {_file(win, TEMPLATE)}", target.number, store_file),
            Change("bcd", "{bootmgr} device (11000001)", "-", identity_text(boot_id), target.number, store_file),
            Change("bcd", "{bootmgr} default (23000003)", "-", loader, None, store_file),
            Change("bcd", f"{loader} device (11000001)", "-", identity_text(win_id), win.number, store_file),
            Change("bcd", f"{loader} osdevice (21000001)", "-", identity_text(win_id), win.number, store_file),
        ]
        bootmgr = BOOTMGFW if uefi else BOOTMGR
        if not layout.exists(target, bootmgr):
            report.problems.append(f"{_file(target, bootmgr)} is missing: copy it from {_file(win, 'Windows/Boot')}"
                                   f"\\{'EFI' if uefi else 'PCAT'} (the store alone does not boot)")
        if not dry_run:
            with open_volume(path, target.start, target.part.size, target.number, target.fs, readonly=False) as files:
                bak = files.replace(loc, result.data)
                if bak:
                    report.backups.append(f"partition {target.number}:{bak}")
        return report
    finally:
        disk.close()


# --- show -----------------------------------------------------------------------------------------------


def show_disk(path: str, *, sector_size: int | None = None) -> ShowReport:
    """Every boot entry with its devices decoded and resolved, and each Windows' drive letters."""
    disk, layout = _open(path, sector_size, None)
    try:
        parts = [{"number": s.number, "start": s.start, "size": s.part.size, "fs": s.fs,
                  "identity": identity_text(layout.identity(s)), "bootable": s.part.bootable,
                  "boot": s is layout.boot, "windows": s in layout.windows} for s in layout.parts]
        boot = layout.boot
        loc = layout.bcd_location(boot) if boot is not None else None
        out = ShowReport(disk=path, scheme=layout.scheme, firmware=layout.firmware, disk_id=layout.table.disk_id,
                         partitions=parts, boot_partition=boot.number if boot else None,
                         windows_partitions=[s.number for s in layout.windows],
                         store=_file(boot, loc) if boot is not None and loc else None)
        if boot is None or loc is None:
            out.problems.append("no boot partition with a BCD store found")
        else:
            try:
                with open_volume(path, boot.start, boot.part.size, boot.number, boot.fs, readonly=True) as files:
                    store = BcdStore(load_hive(files, loc, out.store or loc, for_edit=False))
                    if store.hive.dirty:
                        out.problems.append(f"BCD store {out.store} is dirty ({store.hive.dirty_reason})")
                    out.notes += _replayed(store.hive, f"BCD store {out.store}")
                    for o in view_store(store, layout):
                        out.objects.append({
                            "guid": o.guid, "alias": o.alias, "type": o.type_name, "description": o.description,
                            "elements": [{"code": f"{e.code:08x}", "name": e.name,
                                          "devices": [vars(d) for d in e.devices]} for e in o.elements]})
            except _SOFT as e:
                out.problems.append(f"BCD store {out.store} unreadable: {e.message}")
        for win in layout.windows:
            _show_letters(path, layout, win, out)
        return out
    finally:
        disk.close()


def _show_letters(path: str, layout: DiskLayout, win: PartState, out: ShowReport) -> None:
    where = _file(win, SYSTEM_HIVE)
    try:
        with open_volume(path, win.start, win.part.size, win.number, win.fs, readonly=True) as files:
            hive = load_hive(files, SYSTEM_HIVE, where, for_edit=False)
    except _SOFT as e:
        out.problems.append(f"{where} unreadable: {e.message}")
        return
    if hive.dirty:
        out.problems.append(f"{where} is dirty ({hive.dirty_reason}): `bcd repair` will refuse to change it")
    out.notes += _replayed(hive, where)
    for name, vol in sorted(mounted_devices(hive).items()):
        s = resolve_volume(layout, vol)
        out.letters.append({"windows": win.number, "name": name, "value": volume_text(vol),
                            "kind": "other" if isinstance(vol, OtherVolume) else "partition",
                            "letter": name.upper().startswith("\\DOSDEVICES\\"),
                            "partition": s.number if s else None, "resolves": s is not None})
