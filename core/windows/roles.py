"""What Windows puts on a disk: partition roles, their type ids, and the files that mark them.

The one table of this knowledge (BOOT.md §4). BIOS/MBR: "System Reserved" (a small
active NTFS with bootmgr and \\Boot\\BCD) + the Windows partition. UEFI/GPT: ESP (FAT32 with
\\EFI\\Microsoft\\Boot\\BCD) + MSR + the Windows partition. A partition can be both (Windows
installed without System Reserved: bootmgr sits on C:).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError
from ..fs.model import FsUsage
from ..partition.model import Partition, PartitionTable

# GPT partition type GUIDs (lowercase, dashed, as `Partition.type_id`) and MBR type bytes.
ESP_GUID = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
MSR_GUID = "e3c9e316-0b5c-4db8-817d-f92df00215ae"
WINRE_GUID = "de94bba4-06d1-4d40-a16a-bfd50179d6ac"
BASIC_DATA_GUID = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
MBR_ESP = "0xef"
MBR_WINRE = "0x27"

# Files that mark a role (volume-relative, "/"-separated, matched case-insensitively).
WINLOAD = "Windows/System32/winload.exe"  # a Windows partition
BOOTMGR = "bootmgr"  # BIOS boot manager, beside Boot/BCD
BIOS_BCD = "Boot/BCD"
EFI_BCD = "EFI/Microsoft/Boot/BCD"  # the UEFI store, on the ESP
BOOTMGFW = "EFI/Microsoft/Boot/bootmgfw.efi"

Role = Literal["esp", "msr", "system-reserved", "windows", "recovery", "data", "other"]


@dataclass(frozen=True)
class RoleInfo:
    """What a role means to the engine."""

    role: Role
    type_ids: frozenset[str]  # partition types that alone decide the role ("" when content decides)
    system: bool  # Windows needs it to start: `--partitions system` takes it
    boot: bool  # BCD or MountedDevices name it: when it moves, the boot configuration is repaired


ROLES: dict[Role, RoleInfo] = {r.role: r for r in (
    RoleInfo("esp", frozenset({ESP_GUID, MBR_ESP}), system=True, boot=True),
    RoleInfo("msr", frozenset({MSR_GUID}), system=True, boot=False),
    RoleInfo("recovery", frozenset({WINRE_GUID, MBR_WINRE}), system=False, boot=False),
    RoleInfo("system-reserved", frozenset(), system=True, boot=True),
    RoleInfo("windows", frozenset(), system=True, boot=True),
    RoleInfo("data", frozenset(), system=False, boot=False),
    RoleInfo("other", frozenset(), system=False, boot=False),
)}

SYSTEM_ROLES = frozenset(r.role for r in ROLES.values() if r.system)
BOOT_ROLES = frozenset(r.role for r in ROLES.values() if r.boot)


def is_esp(type_id: str) -> bool:
    return type_id.lower() in ROLES["esp"].type_ids


def role_of(p: Partition, usage: FsUsage | None) -> Role:
    t = p.type_id.lower()
    for info in ROLES.values():
        if t in info.type_ids:
            return info.role
    if usage is not None and usage.has_windows:
        return "windows"
    if usage is not None and usage.has_bootmgr:
        return "system-reserved"
    if usage is not None and usage.fs != "raw":
        return "data"
    return "other"


def select_partitions(table: PartitionTable, roles: dict[int, Role], spec: str) -> set[int]:
    """Partition numbers chosen by ``--partitions`` (``all``, ``system`` or ``N[,N..]``)."""
    numbers = {p.number for p in table.partitions}
    spec = spec.strip().lower()
    if spec == "all":
        return numbers
    if spec == "system":
        chosen = {n for n, r in roles.items() if r in SYSTEM_ROLES}
        if not any(r == "windows" for n, r in roles.items() if n in chosen):
            raise UsageError(detail="--partitions system: no Windows partition (\\Windows\\System32\\winload.exe)"
                                    " was found on this disk; name partitions by number or use 'all'")
        return chosen
    chosen = set()
    for part in spec.split(","):
        try:
            n = int(part)
        except ValueError:
            raise UsageError(detail=f"--partitions: {part!r} is not 'all', 'system' or a partition number") from None
        if n not in numbers:
            raise UsageError(detail=f"--partitions: the disk has no partition {n} "
                                    f"(it has {', '.join(map(str, sorted(numbers))) or 'none'})")
        chosen.add(n)
    return chosen
