"""Write the WinPE medium onto a USB stick: MBR, one active FAT32 partition, bootable by BIOS and UEFI.

- UEFI firmware starts ``\\EFI\\Boot\\bootx64.efi`` (the base's) from any FAT partition.
- BIOS: the MBR's code (syslinux's GPL ``mbr.bin``) starts the active partition's boot sector, which
  ``syslinux --install`` writes (Microsoft's FAT32 boot sector is not ours to ship), and syslinux's
  ``chain.c32 ntldr=/bootmgr`` hands over to the base's ``bootmgr``.

The stick gets the same target safety as ``rescue restore``: `core.disk.device` checks it (not a source,
not mounted or held; the build's own files, the root filesystem and the base count as sources, so the
disk the build runs from is refused) before anything opens it for writing, the plan is shown and the
caller confirms (``--yes`` or the typed name), and the write goes through the ``O_EXCL`` handle that
`open_target` returns. The kernel here may have no vfat driver and the build never mounts: the file
system is made in a sparse file with mkfs.vfat and filled with mtools, and only its written extents
are copied onto the stick.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.host import require, run
from core.disk import device, sysblock

MiB = 1 << 20
FAT32_MAX_FILE = (4 << 30) - 1
FAT32_MIN = 64 * MiB  # mkfs.vfat needs 65525 clusters for FAT32; with room for a small WinPE
MBR_MAX = 2 << 40  # 32-bit sector numbers of 512 bytes
START = MiB
LABEL = "RESCUEPE"
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
CHAIN_MODULES = ("chain.c32", "libcom32.c32", "libutil.c32")
SYSLINUX_CFG = "DEFAULT winpe\r\nLABEL winpe\r\n  COM32 chain.c32\r\n  APPEND fs ntldr=/bootmgr\r\n"
USB_TOOLS = ("mkfs.vfat", "mcopy", "mmd", "syslinux")
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}


@dataclass
class UsbPlan:
    target: str
    target_description: str
    size: int
    sector_size: int
    part_size: int
    files: dict[str, Path]
    data_bytes: int

    def lines(self) -> list[str]:
        return [f"Write the WinPE rescue medium onto {self.target_description}",
                f"  MBR, partition 1: FAT32 '{LABEL}', active, {START // MiB} MiB to "
                f"{(START + self.part_size) // MiB} MiB",
                f"  {len(self.files)} files, {self.data_bytes / MiB:.1f} MiB"]


def check_fat32(files: dict[str, Path]) -> int:
    """Total bytes; a file FAT32 cannot hold (4 GiB and over: a large boot.wim) is refused with why."""
    total = 0
    for rel, src in files.items():
        size = src.stat().st_size
        if size > FAT32_MAX_FILE:
            raise BuildError(detail=f"{rel} is {size / (1 << 30):.2f} GiB: a FAT32 file must be under 4 GiB "
                                    "(write the ISO instead, or use a smaller base)")
        total += size
    return total


def plan(target: str, files: dict[str, Path], sources: list[str]) -> UsbPlan:
    """Check the stick (safety, whole disk, size) and what goes on it; nothing is opened for writing."""
    require(*USB_TOOLS)
    data = check_fat32(files)
    try:
        st = os.stat(target)
    except OSError as e:
        raise BuildError(detail=f"--usb {target}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise BuildError(detail=f"--usb {target} is not a disk (a block device such as /dev/sdX)")
    if sysblock.whole_disk(st.st_rdev) != st.st_rdev:
        raise BuildError(detail=f"--usb {target} is a partition: name the whole disk")
    device.check_target_path(target, sources=sources)
    with device.open_source(target) as disk:
        size, sector, model = disk.size, disk.logical_sector_size, disk.model
    part = (size - START) // MiB * MiB
    if size > MBR_MAX:
        raise BuildError(detail=f"--usb {target} is over 2 TiB, more than an MBR partition table addresses")
    if part < max(FAT32_MIN, data + data // 10 + 8 * MiB):
        raise BuildError(detail=f"--usb {target} is {size / MiB:.0f} MiB: too small for {data / MiB:.0f} MiB "
                                f"on FAT32 (at least {FAT32_MIN // MiB} MiB)")
    what = f"{target} ({size / (1 << 30):.1f} GiB{', ' + model if model else ''})"
    return UsbPlan(target, what, size, sector, part, files, data)


def _fat_image(p: UsbPlan, image: Path) -> None:
    """The partition's FAT32 file system as a sparse file, filled with the medium and syslinux."""
    image.unlink(missing_ok=True)
    hidden = START // p.sector_size  # the boot sector's "hidden sectors": where the partition starts
    run(["mkfs.vfat", "-F", "32", "-n", LABEL, "-S", str(p.sector_size), "-h", str(hidden), "-C", str(image),
         str(p.part_size // 1024)])
    made: set[str] = set()
    for rel in sorted(p.files):
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d.lower() not in made:
                run(["mmd", "-i", str(image), f"::/{d}"], env=MTOOLS_ENV)
                made.add(d.lower())
        run(["mcopy", "-i", str(image), str(p.files[rel]), f"::/{rel}"], env=MTOOLS_ENV)
    run(["mmd", "-i", str(image), "::/syslinux"], env=MTOOLS_ENV)
    run(["syslinux", "--install", "--directory", "/syslinux", str(image)], env=MTOOLS_ENV)
    staged = image.parent / "syslinux.cfg"
    staged.write_bytes(SYSLINUX_CFG.encode())
    for src in [staged, *(SYSLINUX_BIOS / m for m in CHAIN_MODULES)]:
        run(["mcopy", "-o", "-i", str(image), str(src), f"::/syslinux/{src.name}"], env=MTOOLS_ENV)


def _mbr(p: UsbPlan) -> bytes:
    code = SYSLINUX_MBR.read_bytes()[:440]
    start, count = START // p.sector_size, p.part_size // p.sector_size
    # CHS fields at their "beyond 8 GiB" values: every firmware of the last 20 years reads the LBA ones
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x0C, b"\xfe\xff\xff", start, count)
    signature = os.urandom(4)
    return code.ljust(440, b"\0") + signature + b"\0\0" + entry + bytes(48) + b"\x55\xaa"


def _extents(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the data a sparse file holds (SEEK_DATA / SEEK_HOLE)."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: only a hole is left
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            out.append((data, hole - data))
            pos = hole
    finally:
        os.close(fd)
    return out


def write(p: UsbPlan, work: Path, sources: list[str],
          progress: Callable[[str], None] = lambda s: None) -> None:
    """Make the file system, then write it and the MBR through the safely opened stick."""
    image = work / "usb-fat32.img"
    progress("making the FAT32 file system")
    _fat_image(p, image)
    with device.open_target(p.target, sources=sources, required_size=p.size,
                            sector_size=p.sector_size) as disk:
        device.recheck(disk)
        if disk.size != p.size:
            raise BuildError(detail=f"{p.target} changed since the plan ({disk.size} bytes, not {p.size})")
        progress(f"writing {p.target}")
        disk.pwrite(0, bytes(START))  # old partition tables and boot code before the partition
        tail = p.size - (START + p.part_size)
        if tail:
            disk.pwrite(START + p.part_size, bytes(tail))  # a stale backup GPT at the disk's end
        with image.open("rb") as f:
            for offset, length in _extents(image):
                done = 0
                while done < length:
                    f.seek(offset + done)
                    chunk = f.read(min(8 * MiB, length - done))
                    disk.pwrite(START + offset + done, chunk, verify=True)
                    done += len(chunk)
        disk.pwrite(0, _mbr(p))  # last: the stick is a medium only once everything under it is written
        disk.sync()
    image.unlink()
    (work / "syslinux.cfg").unlink(missing_ok=True)
