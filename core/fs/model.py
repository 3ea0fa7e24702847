"""What a filesystem uses of its partition, as the imaging engine sees it (a model object).

The parsers of this package (`core.fs.ntfs_usage`, `core.fs.fat`, `core.fs.probe`) produce it; extents
are in bytes from the start of the partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..extents import Extent, Runs


@dataclass
class FsUsage:
    """What a filesystem uses of its partition, for imaging.

    ``used`` lists the byte extents (relative to the partition start, sorted, non-overlapping,
    merged) that must be stored; a `Runs` (packed) when it follows a bitmap, as long as the volume is
    fragmented. ``zeroed`` lists extents whose content is deliberately not stored
    and must be written as zeros on restore (pagefile.sys / hiberfil.sys data runs). ``used`` and
    ``zeroed`` never overlap.
    """

    fs: Literal["ntfs", "fat12", "fat16", "fat32", "bitlocker", "raw"]
    cluster_size: int
    used: Sequence[Extent]
    zeroed: list[Extent] = field(default_factory=list)
    label: str = ""
    serial: str = ""  # NTFS volume serial (hex) / FAT volume id
    warnings: list[str] = field(default_factory=list)
    dirty: bool = False
    hibernated: bool = False
    has_windows: bool = False  # \Windows\System32\winload.exe exists
    has_bootmgr: bool = False  # \bootmgr + \Boot\BCD (BIOS) or \EFI\Microsoft\Boot\BCD (ESP)

    @property
    def used_bytes(self) -> int:
        if isinstance(self.used, Runs):
            return self.used.total
        return sum(length for _, length in self.used)
