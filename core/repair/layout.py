"""What a disk holds for booting Windows: its partitions' identities, filesystems and roles.

Roles (BOOT.md §1, §4): the *boot partition* holds the boot manager and its store (``\\bootmgr`` +
``\\Boot\\BCD`` on NTFS/FAT for BIOS, ``\\EFI\\Microsoft\\Boot\\BCD`` on the ESP for UEFI); a *Windows
partition* holds ``\\Windows\\System32\\winload.exe``. Identities are what BCD and MountedDevices record:
MBR disk signature + byte offset, or GPT disk GUID + partition GUID.

`DiskLayout.holding(path)` answers "which partitions have this file" from the filesystems' own indexes
(`core.fs.ntfs_lookup`, `core.fs.fat`: read-only lookups, no mount), which is how the repair tells
which partition now holds the content a BCD object names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..bcd.device import GptPartitionId, MbrPartitionId, PartitionId
from ..errors import FormatError, UnsupportedError
from ..fs.c_fat import ATTR_DIRECTORY
from ..fs.fat import FatVolume
from ..fs.model import FsUsage
from ..fs.ntfs_lookup import path_exists
from ..fs.ntfs_volume import NtfsVolume
from ..fs.probe import probe_usage
from ..io.reader import Reader, WindowReader
from ..partition.detect import read_partition_table
from ..partition.model import Partition, PartitionTable
from ..windows.roles import BIOS_BCD, EFI_BCD, is_esp

FAT_KINDS = ("fat12", "fat16", "fat32")


@dataclass
class PartState:
    """One partition with what its filesystem says."""

    part: Partition
    usage: FsUsage
    _ntfs: NtfsVolume | None = field(default=None, repr=False)
    _fat: FatVolume | None = field(default=None, repr=False)
    _exists: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def number(self) -> int:
        return self.part.number

    @property
    def start(self) -> int:
        return self.part.start

    @property
    def fs(self) -> str:
        return self.usage.fs


class DiskLayout:
    """Partitions of ``reader`` (a whole disk), probed, with roles and identities."""

    def __init__(self, reader: Reader, sector_size: int, *, path: str = "disk",
                 new_signature: int | None = None) -> None:
        self.reader = reader
        self.path = path
        self.table: PartitionTable = read_partition_table(reader, sector_size)
        self.sector_size = self.table.sector_size
        self.scheme = self.table.scheme
        if new_signature is not None and self.scheme != "mbr":
            raise UnsupportedError(detail="a new disk signature applies to MBR disks only (GPT disks have GUIDs)")
        self.old_signature = int(self.table.disk_id, 16) if self.scheme == "mbr" else None
        # The signature the disk will have: identities are computed with it, so a dry run shows the result.
        self.signature = new_signature if new_signature is not None else self.old_signature
        self.disk_guid = self.table.disk_id.lower() if self.scheme == "gpt" else None
        self.parts: list[PartState] = []
        for p in self.table.partitions:
            win = WindowReader(reader, p.start, p.size)
            self.parts.append(PartState(p, probe_usage(win, type_id=p.type_id)))
        self.windows = [s for s in self.parts if s.usage.has_windows]
        self.boot = self._find_boot()

    # --- roles -----------------------------------------------------------------------------------

    def _find_boot(self) -> PartState | None:
        cands = [s for s in self.parts if s.usage.has_bootmgr]
        if not cands:
            return None
        if self.scheme == "gpt":
            cands.sort(key=lambda s: (not is_esp(s.part.type_id), s.number))
        else:
            cands.sort(key=lambda s: (not s.part.bootable, s.part.logical, s.number))
        return cands[0]

    def bcd_location(self, s: PartState) -> str | None:
        """Where the store is on partition ``s`` (``EFI/...`` wins on an ESP), or None."""
        if s.fs in FAT_KINDS and self.exists(s, EFI_BCD):
            return EFI_BCD
        if self.exists(s, BIOS_BCD):
            return BIOS_BCD
        if self.exists(s, EFI_BCD):
            return EFI_BCD
        return None

    @property
    def firmware(self) -> str:
        """"uefi" when the boot partition holds the EFI store (or, without one, on GPT), else "bios"."""
        if self.boot is not None:
            return "uefi" if self.bcd_location(self.boot) == EFI_BCD else "bios"
        return "uefi" if self.scheme == "gpt" else "bios"

    def by_number(self, number: int) -> PartState | None:
        return next((s for s in self.parts if s.number == number), None)

    # --- identities -----------------------------------------------------------------------------

    def identity(self, s: PartState) -> PartitionId:
        if self.scheme == "mbr":
            return MbrPartitionId(self.signature or 0, s.start)
        return GptPartitionId(self.disk_guid or "", (s.part.guid or "").lower())

    def resolve(self, ident: PartitionId) -> PartState | None:
        """The partition ``ident`` names on this disk as it is (after a new signature), or None."""
        if isinstance(ident, MbrPartitionId):
            if self.scheme != "mbr" or ident.signature != self.signature:
                return None
            return next((s for s in self.parts if s.start == ident.offset), None)
        if self.scheme != "gpt" or ident.disk_guid.lower() != self.disk_guid:
            return None
        return next((s for s in self.parts if (s.part.guid or "").lower() == ident.part_guid.lower()), None)

    def same_place(self, ident: PartitionId) -> PartState | None:
        """The partition at the place an unresolved identity names: same byte offset (MBR, another
        signature) or same partition GUID (GPT, another disk GUID)."""
        if isinstance(ident, MbrPartitionId) and self.scheme == "mbr":
            return next((s for s in self.parts if s.start == ident.offset), None)
        if isinstance(ident, GptPartitionId) and self.scheme == "gpt":
            return next((s for s in self.parts if (s.part.guid or "").lower() == ident.part_guid.lower()), None)
        return None

    # --- content ------------------------------------------------------------------------------------

    def exists(self, s: PartState, path: str, *, directory: bool | None = None) -> bool:
        """Whether ``path`` (Windows or POSIX separators, case-insensitive) exists on ``s``."""
        key = f"{directory}:{path.replace(chr(92), '/').strip('/').casefold()}"
        if key in s._exists:
            return s._exists[key]
        found = False
        try:
            if s.fs == "ntfs":
                if s._ntfs is None:
                    s._ntfs = NtfsVolume(WindowReader(self.reader, s.start, s.part.size))
                found = path_exists(s._ntfs, path, directory=directory)
            elif s.fs in FAT_KINDS:
                if s._fat is None:
                    s._fat = FatVolume(WindowReader(self.reader, s.start, s.part.size))
                hit = s._fat.find_path(path)
                found = hit is not None and (directory is None or bool(hit[0] & ATTR_DIRECTORY) == directory)
        except (FormatError, UnsupportedError):
            found = False  # a damaged volume holds nothing we can rely on
        s._exists[key] = found
        return found

    def holding(self, path: str) -> list[PartState]:
        return [s for s in self.parts if self.exists(s, path)]
