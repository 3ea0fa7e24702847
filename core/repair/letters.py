"""Which MountedDevices values of a Windows' SYSTEM hive must follow its partitions (BOOT.md §10.2).

The Windows letter is the ``\\DosDevices\\X:`` whose value is the Windows partition's *old* identity
(as the BCD repair found it), or ``C:`` when none is. It is pointed at the Windows partition. Every
other value (letters and ``\\??\\Volume{…}`` names alike) that names no partition of this disk any more
is rewritten only when we know it was this disk: an MBR value with one of the disk's old signatures at
the offset of a current partition, or an identity the BCD repair mapped. Values of other disks (a
second drive's letters, CD-ROMs, USB sticks) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..bcd.device import GptPartitionId, MbrPartitionId, PartitionId
from ..bcd.mounteddevices import GptVolume, MbrVolume, MountedVolume, drive_letters, mounted_devices
from ..regf.hive import Hive
from .bcdfix import BcdChange
from .layout import DiskLayout, PartState


@dataclass
class LetterPlan:
    mapping: dict[PartitionId, PartitionId] = field(default_factory=dict)
    windows_letter: str | None = None
    targets: dict[str, int] = field(default_factory=dict)  # value name -> partition number it will name
    left: list[str] = field(default_factory=list)


def volume_text(v: MountedVolume) -> str:
    if isinstance(v, MbrVolume):
        return f"MBR disk 0x{v.signature:08x} offset {v.offset:#x}"
    if isinstance(v, GptVolume):
        return f"GPT partition {{{v.part_guid}}}"
    return f"device {v.text!r}"


def _key(v: MbrVolume | GptVolume) -> PartitionId:
    if isinstance(v, MbrVolume):
        return MbrPartitionId(v.signature, v.offset)
    # MountedDevices keeps only the partition GUID; the rewriter matches GPT keys on it alone.
    return GptPartitionId("", v.part_guid)


def resolve_volume(layout: DiskLayout, v: MountedVolume) -> PartState | None:
    """The partition of this disk a MountedDevices value names now, or None."""
    if isinstance(v, MbrVolume):
        return layout.resolve(MbrPartitionId(v.signature, v.offset))
    if isinstance(v, GptVolume) and layout.scheme == "gpt":
        return next((s for s in layout.parts if (s.part.guid or "").lower() == v.part_guid.lower()), None)
    return None


def _matches(v: MountedVolume, ident: PartitionId) -> bool:
    if isinstance(v, MbrVolume) and isinstance(ident, MbrPartitionId):
        return v.signature == ident.signature and v.offset == ident.offset
    if isinstance(v, GptVolume) and isinstance(ident, GptPartitionId):
        return v.part_guid.lower() == ident.part_guid.lower()
    return False


def plan_letters(hive: Hive, layout: DiskLayout, win: PartState, bcd_changes: list[BcdChange]) -> LetterPlan:
    plan = LetterPlan()
    letters = drive_letters(hive)
    values = mounted_devices(hive)
    win_old = [c.old for c in bcd_changes if c.partition == win.number]
    # Prefer the letter holding the old identity; ``sorted`` puts C: before the others.
    for letter, vol in sorted(letters.items()):
        if any(_matches(vol, ident) for ident in win_old):
            plan.windows_letter = letter
            break
    else:
        if not any(resolve_volume(layout, v) is win for v in letters.values()) and "C" in letters:
            plan.windows_letter = "C"
    win_vol = letters.get(plan.windows_letter) if plan.windows_letter else None
    old_sigs = {c.old.signature for c in bcd_changes if isinstance(c.old, MbrPartitionId)}
    if isinstance(win_vol, MbrVolume):
        old_sigs.add(win_vol.signature)
    bcd_map: dict[PartitionId, set[int]] = {}
    for c in bcd_changes:
        bcd_map.setdefault(c.old, set()).add(c.partition)
    for name, vol in sorted(values.items()):
        if not isinstance(vol, (MbrVolume, GptVolume)) or resolve_volume(layout, vol) is not None:
            continue
        target: PartState | None = None
        if win_vol is not None and vol == win_vol:
            target = win
        elif isinstance(vol, MbrVolume) and vol.signature in old_sigs:
            target = layout.same_place(MbrPartitionId(vol.signature, vol.offset))
        if target is None:
            hits = {n for ident, nums in bcd_map.items() if _matches(vol, ident) for n in nums}
            if len(hits) == 1:
                target = layout.by_number(hits.pop())
        if target is None:
            plan.left.append(f"{name} = {volume_text(vol)}: not a partition of this disk, left as it is")
            continue
        plan.mapping[_key(vol)] = layout.identity(target)
        plan.targets[name] = target.number
    return plan
