"""The SYSTEM hive changes that fit a Windows to another disk controller (`rescue adapt`).

`plan_adapt` computes, from the hive and the controller, every value to set, in every control set that
``Select`` names (Current, Default, LastKnownGood): ``Start=0`` for the inbox drivers of the
controller's kind (`adapt_table`), the non-zero values of their ``StartOverride`` subkeys set to 0
(Windows 8 and later), on Windows 7 the ``CriticalDeviceDatabase`` entries of the controller's ids
(``Service``, ``ClassGUID``), and for a driver from ``--drivers`` its service keys. Nothing else is
touched. `apply_edits` writes the plan through `HiveWriter`.

What the hive tells about the Windows (no SOFTWARE hive needed): a ``DriverDatabase`` key at the root
exists from Windows 8 on (Windows 7 has ``CriticalDeviceDatabase`` instead), its ``Version`` value is the
Windows version (0x06030000 on the Windows 8.1 sample, 0x0A000000 on the Windows 10 one), and
``Control\\Session Manager\\Environment\\PROCESSOR_ARCHITECTURE`` is ``x86`` or ``AMD64``.

A driver from ``--drivers`` on Windows 8 and later: its files and service keys are written as on Windows 7
(the device's service with ``Start=0`` and, should the key exist already, its ``StartOverride`` values 0).
What differs is how Windows finds the driver of a controller it has not seen: Windows 8 and later have no
CriticalDeviceDatabase; the kernel matches the device's ids against the driver store, whose index is the
``DriverDatabase`` key of this hive (``DeviceIds\\<id>`` has a value per INF that serves the id) and whose
files are in ``\\Windows\\System32\\DriverStore``. Writing that store offline is what DISM does; its
registry form is not documented, so adapt does not imitate it. It reads it instead: when no INF of the
store serves any of the controller's ids, the plan says (as a problem, exit 102) that Windows will not find
the driver and how to add it to the store; when one does, the plan names it (that driver is the one
Windows will use for the controller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..disk.controller import Controller
from ..drivers.inf import DriverChoice, ServiceInstall, Target
from ..errors import FormatError, UnsupportedError
from ..regf.hive import Hive, Key
from ..regf.values import DecodedValue, RegType
from ..regf.writer import HiveWriter
from .adapt_table import IDE_VENDOR_DRIVERS, KINDS, NVME_DRIVER_HINT, Kind

SELECT_NAMES = ("Current", "Default", "LastKnownGood")
# Control sets are numbered 001..999 (ControlSet%03d); a Select value outside that is a damaged hive.
MAX_CONTROL_SET = 999
ARCHES = {"x86": "x86", "amd64": "amd64"}


@dataclass(frozen=True)
class WindowsInfo:
    family: str  # "7" (Windows 7, also Vista) or "8+" (Windows 8 and later)
    arch: str | None  # "x86", "amd64", or None when the hive does not say
    control_sets: tuple[str, ...]
    version: tuple[int, int] | None = None  # Windows 8+: from DriverDatabase\Version, None when absent or odd

    @property
    def target(self) -> Target:
        """What an INF's decorations are matched against: 6.1 for Windows 7; for Windows 8 and later the
        version DriverDatabase names, else 6.2 (the oldest it can be). The build number is not in the
        SYSTEM hive, so a decoration that names one does not apply."""
        if self.arch is None:
            raise UnsupportedError(detail="the SYSTEM hive names no processor architecture "
                                          "(Session Manager\\Environment\\PROCESSOR_ARCHITECTURE): cannot pick a driver")
        if self.family == "7":
            return Target(self.arch, (6, 1))
        return Target(self.arch, self.version or (6, 2))


@dataclass(frozen=True)
class HiveEdit:
    """One value set: ``key`` (path in the hive), ``value`` name, registry type, ``old`` (None: absent)."""

    key: str
    value: str
    type: int
    old: DecodedValue | None
    new: DecodedValue

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "type": RegType(self.type).name,
                "old": _jsonable(self.old), "new": _jsonable(self.new)}


def _jsonable(v: DecodedValue | None) -> Any:
    return v.hex() if isinstance(v, bytes) else v


@dataclass
class AdaptPlan:
    info: WindowsInfo
    edits: list[HiveEdit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def windows_info(hive: Hive) -> WindowsInfo:
    select = hive.find("Select")
    if select is None:
        raise FormatError(what=f"hive {hive.name}", detail="no Select key (not a SYSTEM hive)")
    sets: list[str] = []
    for name in SELECT_NAMES:
        v = select.value(name)
        if v is None:
            continue
        n = v.value
        if not isinstance(n, int) or not 1 <= n <= MAX_CONTROL_SET:
            raise FormatError(what=f"hive {hive.name}", detail=f"Select\\{name} = {n!r} names no control set")
        cs = f"ControlSet{n:03d}"
        if cs not in sets:
            sets.append(cs)
    if not sets:
        raise FormatError(what=f"hive {hive.name}", detail="Select names no control set")
    database = hive.find("DriverDatabase")
    family = "8+" if database is not None else "7"
    version = None
    dv = database.value("Version") if database is not None else None
    if dv is not None and dv.type == RegType.DWORD and isinstance(dv.value, int):
        major, minor = dv.value >> 24, dv.value >> 16 & 0xFF
        # 6.2 (Windows 8) .. 10.0 (Windows 10 and 11); anything else is not a version we know the meaning of
        if (6, 2) <= (major, minor) <= (10, 0) and dv.value & 0xFFFF == 0:
            version = (major, minor)
    arch = None
    env = hive.find(f"{sets[0]}\\Control\\Session Manager\\Environment")
    v = env.value("PROCESSOR_ARCHITECTURE") if env is not None else None
    if v is not None and isinstance(v.value, str):
        arch = ARCHES.get(v.value.strip().lower())
    return WindowsInfo(family, arch, tuple(sets), version)


class _Planner:
    def __init__(self, hive: Hive, plan: AdaptPlan) -> None:
        self.hive = hive
        self.plan = plan
        self.seen: set[tuple[str, str]] = set()

    def set(self, key: str, value: str, vtype: int, new: DecodedValue) -> None:
        if (key.lower(), value.lower()) in self.seen:
            return
        self.seen.add((key.lower(), value.lower()))
        k = self.hive.find(key)
        cur = k.value(value) if k is not None else None
        old = cur.value if cur is not None else None
        if cur is not None and cur.type == vtype and old == new:
            return
        self.plan.edits.append(HiveEdit(key, value, vtype, old, new))

    def start_boot(self, cs: str, service: str) -> bool:
        """Start=0 for ``service`` and its StartOverride values; False when the service is not installed."""
        key = self.hive.find(f"{cs}\\Services\\{service}")
        if key is None:
            return False
        self.set(key.path, "Start", RegType.DWORD, 0)
        override = key.subkey("StartOverride")
        if override is not None:
            for v in override.values():
                if v.type == RegType.DWORD and v.value != 0:
                    self.set(override.path, v.name, RegType.DWORD, 0)
        return True

    def add_service(self, cs: str, svc: ServiceInstall, boot: bool) -> None:
        path = f"{cs}\\Services\\{svc.name}"
        existing = self.hive.find(path)
        path = existing.path if existing is not None else path
        self.set(path, "Type", RegType.DWORD, svc.service_type)
        self.set(path, "Start", RegType.DWORD, 0 if boot else svc.start_type)
        if boot and existing is not None:
            # Windows 8 and later: a StartOverride left from an earlier install would disable it again
            self.start_boot(cs, existing.name)
        self.set(path, "ErrorControl", RegType.DWORD, svc.error_control)
        self.set(path, "ImagePath", RegType.EXPAND_SZ, svc.binary)
        if svc.group:
            self.set(path, "Group", RegType.SZ, svc.group)

    def cdd(self, cs: str, hwid: str, service: str, class_guid: str) -> None:
        name = hwid.replace("\\", "#")
        base = self.hive.find(f"{cs}\\Control\\CriticalDeviceDatabase")
        existing = base.subkey(name) if base is not None else None
        path = existing.path if existing is not None else f"{cs}\\Control\\CriticalDeviceDatabase\\{name}"
        self.set(path, "Service", RegType.SZ, service)
        self.set(path, "ClassGUID", RegType.SZ, class_guid)


def _inbox_services(kind: Kind, info: WindowsInfo, ctl: Controller) -> list[str]:
    names = list(kind.win7 if info.family == "7" else kind.win8)
    if kind.name == "ide" and ctl.vendor in IDE_VENDOR_DRIVERS and IDE_VENDOR_DRIVERS[ctl.vendor] not in names:
        names.append(IDE_VENDOR_DRIVERS[ctl.vendor])
    return names


def _known_entry(hive: Hive, cs: str, ctl: Controller) -> str | None:
    """The service an existing CriticalDeviceDatabase entry of the controller's own ids names (Windows 7
    ships entries for many controllers, e.g. each LSI SAS device id), if that service is installed."""
    base = hive.find(f"{cs}\\Control\\CriticalDeviceDatabase")
    if base is None or ctl.vendor is None:
        return None
    for hwid in ctl.ids:
        if "&DEV_" not in hwid:
            continue
        k = base.subkey(hwid.replace("\\", "#"))
        v = k.value("Service") if k is not None else None
        if v is not None and isinstance(v.value, str) and hive.find(f"{cs}\\Services\\{v.value}") is not None:
            return v.value
    return None


def _cdd_ids(kind: Kind, ctl: Controller, driver: DriverChoice | None) -> tuple[list[str], list[str]]:
    """(ids of this very device, generic class-code ids) to write CriticalDeviceDatabase entries for."""
    device: list[str] = []
    if ctl.vendor is not None and ctl.device is not None:
        vd = f"PCI\\VEN_{ctl.vendor:04X}&DEV_{ctl.device:04X}"
        device = [vd, f"{vd}&CC_{kind.class_code:04X}"]
    if driver is not None and driver.hardware_id not in [d.upper() for d in device]:
        device.append(driver.hardware_id)
    generic: list[str] = []
    if kind.generic_class_entry:
        cc = f"{kind.class_code:04X}" + (f"{kind.prog_if:02X}" if kind.prog_if is not None else "")
        generic = [f"PCI\\CC_{cc}"]
    return device, generic


def plan_adapt(hive: Hive, ctl: Controller, driver: DriverChoice | None = None) -> AdaptPlan:
    """Every value to set so that this Windows starts from a disk on ``ctl`` (see the module docstring)."""
    if ctl.kind not in KINDS:
        raise UnsupportedError(detail=f"unknown controller kind {ctl.kind!r}: one of {', '.join(KINDS)}")
    kind = KINDS[ctl.kind]
    info = windows_info(hive)
    plan = AdaptPlan(info)
    if info.family == "7" and kind.name == "nvme" and driver is None:
        raise UnsupportedError(detail=NVME_DRIVER_HINT)
    p = _Planner(hive, plan)
    inbox = _inbox_services(kind, info, ctl)
    found_any = False
    for cs in info.control_sets:
        if hive.find(cs) is None:
            plan.notes.append(f"{cs} (named by Select) does not exist: left alone")
            continue
        found = [s for s in inbox if p.start_boot(cs, s)]
        found_any = found_any or bool(found)
        missing = [s for s in inbox if s not in found]
        if missing:
            plan.notes.append(f"{cs}: no service {', '.join(missing)} in this Windows (not installed): left alone")
        if driver is not None:
            for svc in driver.services:
                p.add_service(cs, svc, boot=svc is driver.function_service)
        if info.family != "7":
            continue
        _plan_cdd(hive, p, cs, kind, ctl, driver)
    if not found_any and driver is None:
        raise UnsupportedError(detail=f"this Windows has none of the inbox {kind.name} drivers "
                                      f"({', '.join(inbox)}): give its driver with --drivers DIR")
    if info.family != "7":
        _check_driver_store(hive, plan, ctl, driver)
    return plan


def driver_store_matches(hive: Hive, ids: list[str]) -> list[tuple[str, list[str]]]:
    """(id, INF names) for each of ``ids`` that Windows 8+'s driver store (``DriverDatabase\\DeviceIds``) serves."""
    out = []
    for hwid in ids:
        key = hive.find(f"DriverDatabase\\DeviceIds\\{hwid}")
        names = [v.name for v in key.values() if v.name] if key is not None else []
        if names:
            out.append((hwid, names))
    return out


def _check_driver_store(hive: Hive, plan: AdaptPlan, ctl: Controller, driver: DriverChoice | None) -> None:
    """Windows 8+: whether the driver store has a driver for the controller (see the module docstring)."""
    ids = ctl.ids
    if driver is not None and driver.hardware_id not in ids:
        ids = [driver.hardware_id, *ids]
    found = driver_store_matches(hive, ids)
    detected = ctl.vendor is not None and ctl.device is not None
    if found:
        hwid, infs = found[0]
        plan.notes.append(f"the driver store of this Windows serves {hwid} with {', '.join(infs)}: Windows uses "
                          "that driver for the controller" + (f" (the one from --drivers, {driver.inf.name}, is "
                                                              "installed beside it)" if driver is not None else ""))
        return
    if not detected and driver is None:
        plan.notes.append("the controller's PCI ids are unknown (--controller without detection): whether this "
                          "Windows' driver store has a driver for it was not checked")
        return
    fs = driver.function_service if driver is not None else None
    plan.problems.append(
        f"no driver in this Windows' driver store serves {ids[0]}, and Windows 8 and later find a new boot "
        "controller's driver only there (not through services alone), which adapt does not write"
        + (f": {fs.name} is installed to start at boot, but" if fs is not None else ":")
        + " add the driver to the store too (from Windows PE: dism /image:W:\\ /add-driver /driver:DIR), "
        "or Windows will stop with 0x7B")


def _plan_cdd(hive: Hive, p: _Planner, cs: str, kind: Kind, ctl: Controller, driver: DriverChoice | None) -> None:
    device_ids, generic_ids = _cdd_ids(kind, ctl, driver)
    if driver is not None:
        fs = driver.function_service
        service, guid = (fs.name if fs else ""), driver.class_guid or kind.class_guid
    else:
        known = _known_entry(hive, cs, ctl)
        if known is not None:
            service, guid = known, kind.class_guid
            p.start_boot(cs, known)
        elif kind.name == "ide" and ctl.vendor in IDE_VENDOR_DRIVERS:
            service, guid = IDE_VENDOR_DRIVERS[ctl.vendor], kind.class_guid
        elif kind.win7_cdd is not None:
            service, guid = kind.win7_cdd, kind.class_guid
        else:
            p.plan.problems.append(
                f"{cs}: Windows 7 has no inbox driver known for this {kind.name} controller"
                + (f" ({ctl.ids[0]})" if ctl.ids else "") + ": give its driver with --drivers DIR")
            return
        if hive.find(f"{cs}\\Services\\{service}") is None:
            p.plan.problems.append(f"{cs}: service {service} is not installed: no CriticalDeviceDatabase entry "
                                   "written; give the driver with --drivers DIR")
            return
    for hwid in device_ids:
        p.cdd(cs, hwid, service, guid)
    for hwid in generic_ids:
        if driver is None:
            p.cdd(cs, hwid, kind.win7_cdd or service, kind.class_guid)
    if not device_ids:
        p.plan.notes.append(f"{cs}: the controller's PCI ids are unknown (--controller without detection): "
                            "no CriticalDeviceDatabase entry for the device itself was written")


def apply_edits(writer: HiveWriter, edits: list[HiveEdit]) -> None:
    """Set every planned value (missing keys are created)."""
    keys: dict[str, Key] = {}
    for e in edits:
        k = keys.get(e.key.lower())
        if k is None:
            k = keys[e.key.lower()] = writer.ensure_key(e.key)
        writer.set_value(k, e.value, e.type, e.new)
