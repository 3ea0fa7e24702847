"""Which partition each BCD device points to, and the rewrite of those that point nowhere.

A partition descriptor that does not name a partition of this disk as it is now (old MBR signature or
offset, old GPT GUIDs) is pointed at the partition that now holds *its content* (BOOT.md §8.5):

1. the *evidence* is the file the element names: the object's path element for ``device``-class
   elements (element type + 0x01000001: ``11000001`` -> ``12000002`` path, ``21000001`` ->
   ``22000002`` systemroot / hiberfil path, ``31000003`` -> ``32000004`` SDI path), or the file path
   of the ramdisk/file device the descriptor is nested in;
2. the partition at the same place (same byte offset under a new MBR signature, same partition GUID
   under a new GPT disk GUID) is kept when it holds the evidence (or there is none);
3. otherwise the only partition holding the evidence; otherwise the partition of the object's role
   ({bootmgr}, {memdiag}: the boot partition; OS loaders and resume objects: the Windows partition).

Elements of kind ``boot`` and ``locate`` stay as they are (they are position-independent). An element
can need its own answer (the same old identity is {memdiag}'s boot partition and a resume object's
Windows partition in real stores), so mappings are decided per element, not per store.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from ..bcd.device import (BootDevice, Descriptor, DeviceElement, FileDevice, GptPartitionId, LocateDevice,
                          MbrPartitionId, PartitionDevice, PartitionId, RamdiskDevice, RawDescriptor, VhdDevice,
                          encode_element, partitions, rewrite_raw_partitions)
from ..bcd.elements import ElementFormat, element_format
from ..bcd.store import BcdElement, BcdObject, BcdStore
from ..regf.values import RegType
from .layout import DiskLayout, PartState

PATH_DELTA = 0x01000001  # device element type -> the string element naming its file (see docstring)
APP_FWBOOTMGR, APP_BOOTMGR, APP_OSLOADER, APP_RESUME, APP_MEMDIAG = 1, 2, 3, 4, 5


def identity_text(ident: PartitionId | None) -> str:
    if isinstance(ident, MbrPartitionId):
        return f"MBR disk 0x{ident.signature:08x} offset {ident.offset:#x}"
    if isinstance(ident, GptPartitionId):
        return f"GPT disk {{{ident.disk_guid}}} partition {{{ident.part_guid}}}"
    return "raw/unknown"


@dataclass(frozen=True)
class DeviceView:
    """One descriptor of an element, decoded, with the partition it resolves to (or why not)."""

    depth: int
    kind: str  # partition, boot, locate, ramdisk, file, vhd, raw
    text: str
    partition: int | None
    resolves: bool
    note: str = ""  # e.g. the file the element names is not on that partition


@dataclass(frozen=True)
class ElementView:
    code: int
    name: str
    devices: list[DeviceView]


@dataclass(frozen=True)
class ObjectView:
    guid: str
    alias: str | None
    type_name: str
    description: str | None
    elements: list[ElementView]


@dataclass(frozen=True)
class BcdChange:
    """One rewritten partition reference."""

    object_guid: str
    object_alias: str | None
    description: str | None
    element: int
    element_name: str
    old: PartitionId
    new: PartitionId
    partition: int
    reason: str


@dataclass
class BcdPlan:
    changes: list[BcdChange] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    # (element key, new raw value) to write
    writes: list[tuple[BcdElement, bytes]] = field(default_factory=list)


def _app(obj: BcdObject) -> int | None:
    t = obj.type
    if t is None or t >> 28 != 1:
        return None
    return t & 0xFFFFF


def _string(obj: BcdObject, code: int) -> str | None:
    if element_format(code) != ElementFormat.STRING:
        return None
    el = obj.element(code)
    v = el.value if el is not None else None
    return v if isinstance(v, str) and v else None


def _description(obj: BcdObject) -> str | None:
    return _string(obj, 0x12000004)


def element_evidence(obj: BcdObject, code: int, layout: DiskLayout) -> str | None:
    """The file whose partition element ``code`` of ``obj`` must be (see the module docstring)."""
    path = _string(obj, code + PATH_DELTA)
    if path:
        return path
    app = _app(obj)
    if code == 0x11000001 and app == APP_BOOTMGR:
        return "\\EFI\\Microsoft\\Boot\\bootmgfw.efi" if layout.firmware == "uefi" else "\\bootmgr"
    if code == 0x21000001 and app == APP_OSLOADER:
        return "\\Windows"
    return None


def role_partition(obj: BcdObject, layout: DiskLayout) -> PartState | None:
    app = _app(obj)
    if app in (APP_BOOTMGR, APP_FWBOOTMGR, APP_MEMDIAG):
        return layout.boot
    if app in (APP_OSLOADER, APP_RESUME) and len(layout.windows) == 1:
        return layout.windows[0]
    return None


def decide(ident: PartitionId, evidence: str | None, obj: BcdObject,
           layout: DiskLayout) -> tuple[PartState | None, str]:
    """The partition an unresolved identity should point to now, and why (None: cannot tell)."""
    same = layout.same_place(ident)
    holders = layout.holding(evidence) if evidence else None
    if holders:
        if same is not None and same in holders:
            return same, f"same place, holds {evidence}"
        if len(holders) == 1:
            return holders[0], f"holds {evidence}"
        role = role_partition(obj, layout)
        if role is not None and role in holders:
            return role, f"{_role_name(obj)} partition, holds {evidence}"
        return None, f"{evidence} is on partitions {', '.join(str(h.number) for h in holders)}: ambiguous"
    if same is not None:
        return same, "same place" + (f" ({evidence} found nowhere)" if evidence else "")
    role = role_partition(obj, layout)
    if role is not None:
        return role, f"{_role_name(obj)} partition"
    return None, f"no partition holds {evidence}" if evidence else "no partition at that place and no role"


def _role_name(obj: BcdObject) -> str:
    return "boot" if _app(obj) in (APP_BOOTMGR, APP_FWBOOTMGR, APP_MEMDIAG) else "Windows"


def _remap(d: Descriptor, evidence: str | None, pick: Callable[[PartitionId, str | None], PartitionId | None]) -> Descriptor:
    """``d`` with every partition descriptor the picker maps rewritten; evidence follows nesting."""
    if isinstance(d, PartitionDevice):
        ident = d.identity
        new = pick(ident, evidence) if ident is not None else None
        return d.with_identity(new) if new is not None else d
    if isinstance(d, (RamdiskDevice, FileDevice)) and d.file.device is not None:
        inner = _remap(d.file.device, d.file.path or evidence, pick)
        return replace(d, file=replace(d.file, device=inner))
    if isinstance(d, LocateDevice) and d.parent is not None:
        return replace(d, parent=_remap(d.parent, d.path if d.locate_type == 1 else evidence, pick))
    if isinstance(d, VhdDevice):
        return replace(d, inner=_remap(d.inner, evidence, pick))
    if isinstance(d, RawDescriptor):
        return RawDescriptor(_remap_raw(d.raw, evidence, pick))
    return d


def _remap_raw(raw: bytes, evidence: str | None, pick: Callable[[PartitionId, str | None], PartitionId | None]) -> bytes:
    mapping: dict[PartitionId, PartitionId] = {}
    # Undecoded bytes: find embedded partition descriptors the way the store rewriter does.
    probe = DeviceElement(bytes(16), RawDescriptor(raw))
    for ident in partitions(probe):
        new = pick(ident, evidence)
        if new is not None:
            mapping[ident] = new
    out, _ = rewrite_raw_partitions(raw, mapping) if mapping else (raw, [])
    return out


def plan_bcd(store: BcdStore, layout: DiskLayout) -> BcdPlan:
    """Decide the rewrite of every device element of every object (nothing is written here)."""
    plan = BcdPlan()
    for obj in store.objects():
        for el in obj.elements():
            value = el.value
            if el.format != ElementFormat.DEVICE or el.reg_type != RegType.BINARY or not isinstance(value, DeviceElement):
                continue
            top = element_evidence(obj, el.code, layout)
            found: list[tuple[PartitionId, PartitionId, PartState, str]] = []

            def pick(ident: PartitionId, evidence: str | None, obj: BcdObject = obj, el: BcdElement = el,
                     found: list[tuple[PartitionId, PartitionId, PartState, str]] = found) -> PartitionId | None:
                if layout.resolve(ident) is not None:
                    return None
                target, why = decide(ident, evidence, obj, layout)
                if target is None:
                    plan.unresolved.append(f"{obj.alias or '{' + obj.guid + '}'} {el.name}: {identity_text(ident)} "
                                           f"points nowhere and was left as it is ({why})")
                    return None
                new = layout.identity(target)
                found.append((ident, new, target, why))
                return new

            device = _remap(value.device, top, pick)
            trailing = _remap_raw(value.trailing, top, pick) if value.trailing else value.trailing
            new_raw = encode_element(DeviceElement(value.options, device, trailing))
            if new_raw != el.raw:
                plan.writes.append((el, new_raw))
            for old, new, target, why in found:
                plan.changes.append(BcdChange(obj.guid, obj.alias, _description(obj), el.code, el.name, old, new,
                                              target.number, why))
    return plan


def apply_bcd(store: BcdStore, plan: BcdPlan) -> None:
    for el, raw in plan.writes:
        store.writer.set_value(el.key, "Element", RegType.BINARY, raw)


# --- show ------------------------------------------------------------------------------------------


def _locate_path(obj: BcdObject, d: LocateDevice) -> str:
    if d.locate_type == 1:
        return d.path
    return _string(obj, d.element) or d.path


def _note(layout: DiskLayout, s: PartState | None, evidence: str | None) -> str:
    if s is None or not evidence or layout.exists(s, evidence):
        return ""
    return f"{evidence} is not on partition {s.number}"


def view_descriptor(d: Descriptor, obj: BcdObject, layout: DiskLayout, depth: int = 0,
                    evidence: str | None = None) -> list[DeviceView]:
    """``d`` and its nested descriptors, each with the partition it resolves to."""
    out: list[DeviceView] = []
    if isinstance(d, PartitionDevice):
        ident = d.identity
        s = layout.resolve(ident) if ident is not None else None
        out.append(DeviceView(depth, "partition", identity_text(ident), s.number if s else None, s is not None,
                              _note(layout, s, evidence)))
    elif isinstance(d, BootDevice):
        b = layout.boot
        out.append(DeviceView(depth, "boot", "boot (the partition bootmgr was loaded from)",
                              b.number if b else None, b is not None, _note(layout, b, evidence)))
    elif isinstance(d, LocateDevice):
        path = _locate_path(obj, d)
        holders = layout.holding(path) if path else []
        out.append(DeviceView(depth, "locate", f"locate {path or '?'}", holders[0].number if holders else None,
                              bool(holders)))
        if d.parent is not None:
            out += view_descriptor(d.parent, obj, layout, depth + 1, path or evidence)
    elif isinstance(d, (RamdiskDevice, FileDevice)):
        kind = "ramdisk" if isinstance(d, RamdiskDevice) else "file"
        inner = (view_descriptor(d.file.device, obj, layout, depth + 1, d.file.path or evidence)
                 if d.file.device is not None else [])
        ok = all(v.resolves for v in inner if v.depth == depth + 1) if inner else False
        number = inner[0].partition if inner else None
        out.append(DeviceView(depth, kind, f"{kind} {d.file.path}", number, ok))
        out += inner
    elif isinstance(d, VhdDevice):
        inner = view_descriptor(d.inner, obj, layout, depth + 1, evidence)
        out.append(DeviceView(depth, "vhd", "virtual disk", inner[0].partition if inner else None,
                              bool(inner) and inner[0].resolves))
        out += inner
    else:
        raw = d.raw if isinstance(d, RawDescriptor) else b""
        idents = partitions(DeviceElement(bytes(16), RawDescriptor(raw)))
        hits = [layout.resolve(i) for i in idents]
        out.append(DeviceView(depth, "raw", f"undecoded descriptor ({len(raw)} bytes)",
                              hits[0].number if hits and hits[0] else None, bool(idents) and all(hits)))
        for i, h in zip(idents, hits):
            out.append(DeviceView(depth + 1, "partition", identity_text(i), h.number if h else None, h is not None))
    return out


def view_store(store: BcdStore, layout: DiskLayout) -> list[ObjectView]:
    out = []
    for obj in store.objects():
        els = []
        for el in obj.elements():
            value = el.value
            if el.format == ElementFormat.DEVICE and isinstance(value, DeviceElement):
                evidence = element_evidence(obj, el.code, layout)
                els.append(ElementView(el.code, el.name, view_descriptor(value.device, obj, layout, 0, evidence)))
        out.append(ObjectView(obj.guid, obj.alias, obj.type_name, _description(obj), els))
    return out
