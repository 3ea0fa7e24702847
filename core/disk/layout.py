"""Windows 7 disk layouts: which partition plays which role, and what ``--partitions`` selects.

BIOS/MBR: "System Reserved" (small active NTFS with bootmgr and \\Boot\\BCD) + the Windows partition.
UEFI/GPT: ESP (FAT32 with \\EFI\\Microsoft\\Boot\\BCD) + MSR + the Windows partition. A partition can
be both (Windows installed without System Reserved: bootmgr sits on C:).
"""

from __future__ import annotations

from typing import Literal

from ..errors import UsageError
from .model import FsUsage, Partition, PartitionTable

ESP_GUID = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
MSR_GUID = "e3c9e316-0b5c-4db8-817d-f92df00215ae"
WINRE_GUID = "de94bba4-06d1-4d40-a16a-bfd50179d6ac"
BASIC_DATA_GUID = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"

Role = Literal["esp", "msr", "system-reserved", "windows", "recovery", "data", "other"]

# Roles Windows needs to boot; `--partitions system` takes these.
SYSTEM_ROLES = frozenset({"esp", "msr", "system-reserved", "windows"})


def role_of(p: Partition, usage: FsUsage | None) -> Role:
    t = p.type_id.lower()
    if t in (ESP_GUID, "0xef"):
        return "esp"
    if t == MSR_GUID:
        return "msr"
    if t in (WINRE_GUID, "0x27"):
        return "recovery"
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
