"""Which bytes of an NTFS volume must be imaged: the used clusters of $Bitmap plus both boot sectors.

The used-cluster set is exactly the one ntfs-3g (ntfsclone, partclone.ntfs) reads: the set bits of
$Bitmap (MFT record 6, unnamed $DATA, bit n = cluster n, LSB first), bits past the last cluster
ignored. The backup boot sector (the volume's last sector, beyond the last cluster) is added as ntfsclone
does. Unless asked to keep them, the data runs of the root's pagefile.sys and hiberfil.sys (and Windows
8+ swapfile.sys) move from ``used`` to ``zeroed``: they are restored as zeros, which Windows treats as
an empty page file and "no hibernation image". A hibernated volume keeps its hiberfil.sys: dropping it
would silently discard the hibernated session.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from itertools import accumulate

from ..errors import Error, FilesystemStateWarning, FormatError
from ..extents import Extent, Runs, intersect_extents, iter_merged, iter_subtract, merge_extents, subtract_extents
from ..io.reader import Reader
from ..windows.roles import BIOS_BCD, BOOTMGR, WINLOAD
from .c_ntfs import AT_DATA, AT_VOLUME_INFORMATION, AT_VOLUME_NAME, ROOT_DIRECTORY
from .model import FsUsage
from .ntfs_lookup import find_child, path_exists
from .ntfs_volume import PIECE, NtfsVolume, Stream

FILE_MFTMIRR = 1
FILE_VOLUME = 3
MIRROR_RECORDS = 4  # $MFTMirr mirrors records 0-3 ($MFT, $MFTMirr, $LogFile, $Volume)
FILE_BITMAP = 6
VOLUME_IS_DIRTY = 0x0001  # $VOLUME_INFORMATION flags (ntfs-3g layout.h)
VOLATILE_FILES = ("pagefile.sys", "hiberfil.sys", "swapfile.sys")
HIBERFIL = "hiberfil.sys"

_NONZERO = re.compile(rb"[^\x00]+")  # a charset: sre skips non-matching bytes in a tight C loop
_FULL = re.compile(rb"\xff+")
_TOKENS = re.compile("1+|0+")


def _mixed_runs(data: bytes, first: int) -> list[Extent]:
    """Runs of set bits in bytes with no 0x00/0xFF structure to exploit, via a '0'/'1' string (LSB
    first) that the regex engine splits and ``accumulate`` sums: no Python loop per bit or per run."""
    bits = format(int.from_bytes(data, "little"), f"0{8 * len(data)}b")[::-1]
    tokens = _TOKENS.findall(bits)  # alternating runs of '1's and '0's
    lens = list(map(len, tokens))
    offs = list(map(first.__add__, accumulate(lens, initial=0)))
    k = 0 if tokens[0][0] == "1" else 1
    return list(zip(offs[k::2], lens[k::2]))


def bitmap_runs(pieces: Iterable[bytes], nbits: int, unit: int = 1) -> Runs:
    """Merged runs ``(first bit * unit, count * unit)`` of set bits among the first ``nbits`` bits.

    Fast where it matters: stretches of 0x00 are skipped and stretches of 0xFF taken whole by the regex
    engine's literal/charset scans (C speed); only the bytes in between are decoded bit-wise.
    """
    out = Runs()
    cur_start = cur_end = -1  # the run being extended (it may continue into the next span or piece)

    def add(runs: list[Extent]) -> None:
        nonlocal cur_start, cur_end
        last_start, last_len = runs[-1]
        if last_start + last_len > nbits:  # drop the bits past the volume end
            runs = [(a, min(n, nbits - a)) for a, n in runs if a < nbits]
            if not runs:
                return
        # Runs of one segment are maximal already; only its first run can touch the current one.
        i = 0
        if runs[0][0] == cur_end:
            cur_end += runs[0][1]
            i = 1
        if i < len(runs):
            if cur_end > cur_start >= 0:
                out.append(cur_start * unit, (cur_end - cur_start) * unit)
            for a, n in runs[i:-1]:
                out.append(a * unit, n * unit)
            cur_start, cur_end = runs[-1][0], runs[-1][0] + runs[-1][1]

    base = 0
    for piece in pieces:
        if base >= nbits:
            break
        if base + 8 * len(piece) > nbits:  # last piece: only the bytes holding volume bits
            piece = piece[:(nbits - base + 7) // 8]
        for m in _NONZERO.finditer(piece):
            s, e = m.span()
            pos = s
            for f in _FULL.finditer(piece, s, e):
                if f.start() > pos:
                    add(_mixed_runs(piece[pos:f.start()], base + 8 * pos))
                add([(base + 8 * f.start(), 8 * (f.end() - f.start()))])
                pos = f.end()
            if pos < e:
                add(_mixed_runs(piece[pos:e], base + 8 * pos))
        base += 8 * len(piece)
    if cur_end > cur_start >= 0:
        out.append(cur_start * unit, (cur_end - cur_start) * unit)
    return out


def _used_clusters(vol: NtfsVolume) -> Runs:
    rec = vol.record(FILE_BITMAP)
    if not rec.in_use:
        raise FormatError(what="MFT record 6 ($Bitmap)", detail="not in use")
    s = vol.stream(rec, AT_DATA)
    need = (vol.nr_clusters + 7) // 8
    if s is None:
        raise FormatError(what="$Bitmap", detail="no unnamed $DATA attribute")
    size = len(s) if isinstance(s, bytes) else s.initialized_size
    if size < need:
        raise FormatError(what="$Bitmap", detail=f"{size} bytes cannot cover {vol.nr_clusters} clusters")
    pieces: Iterable[bytes] = [s[:need]] if isinstance(s, bytes) else vol.iter_stream(s, need, PIECE)
    return bitmap_runs(pieces, vol.nr_clusters, vol.cs)


def _volume_state(vol: NtfsVolume, usage: FsUsage) -> None:
    rec = vol.record(FILE_VOLUME)
    info = vol.read_value(rec, AT_VOLUME_INFORMATION, "", vol.record_size)
    if info is None or len(info) < 12:
        raise FormatError(what="MFT record 3 ($Volume)", detail="missing or short $VOLUME_INFORMATION")
    flags = int.from_bytes(info[10:12], "little")
    if flags & VOLUME_IS_DIRTY:
        usage.dirty = True
        usage.warnings.append(FilesystemStateWarning(
            detail="NTFS volume is marked dirty (not cleanly shut down or chkdsk pending); "
                   "it is imaged as is, and Windows will run chkdsk on it"))
    name = vol.read_value(rec, AT_VOLUME_NAME, "", vol.record_size)
    if name:
        usage.label = name.decode("utf-16-le", errors="replace")


def _check_mirror(vol: NtfsVolume, usage: FsUsage) -> None:
    """Compare the first records of $MFT with $MFTMirr (record 1), as ntfs-3g does at mount."""
    mirror = vol.stream(vol.record(FILE_MFTMIRR), AT_DATA)
    if not isinstance(mirror, Stream):
        raise FormatError(what="MFT record 1 ($MFTMirr)", detail="no non-resident unnamed $DATA")
    count = min(MIRROR_RECORDS, mirror.data_size // vol.record_size, vol.record_count)
    size = count * vol.record_size
    if vol.read_stream(mirror, 0, size) != vol.read_stream(vol.mft, 0, size):
        usage.warnings.append("$MFTMirr does not match $MFT (records 0-3): the volume is inconsistent; "
                              "it is imaged as is, run chkdsk /f in Windows")


def _data_extents(vol: NtfsVolume, s: Stream) -> list[Extent]:
    return [(r.lcn * vol.cs, r.length * vol.cs) for r in s.runs if r.lcn is not None]


def _metadata_extents(vol: NtfsVolume) -> list[Extent]:
    """Clusters of $MFT, $MFTMirr and $Bitmap."""
    out = _data_extents(vol, vol.mft)
    for number in (FILE_MFTMIRR, FILE_BITMAP):
        s = vol.stream(vol.record(number), AT_DATA)
        if isinstance(s, Stream):
            out += _data_extents(vol, s)
    return out


def _volatile(vol: NtfsVolume, usage: FsUsage, keep_volatile: bool) -> list[Extent]:
    """Extents of the volatile root files to drop; also sets ``hibernated``."""
    drop: list[Extent] = []
    for name in VOLATILE_FILES:
        number = find_child(vol, ROOT_DIRECTORY, name)
        if number is None:
            continue
        rec = vol.record(number)
        s = vol.stream(rec, AT_DATA)
        if name == HIBERFIL:
            head = s[:4] if isinstance(s, bytes) else (
                vol.read_stream(s, 0, 4) if s is not None and s.initialized_size >= 4 else b"")
            if head.lower() == b"hibr":
                usage.hibernated = True
                usage.warnings.append(FilesystemStateWarning(
                    detail="Windows is hibernated on this volume: hiberfil.sys holds the session "
                           "and is imaged in full; resume only on the same, unchanged volume"))
                continue
        if not keep_volatile and isinstance(s, Stream):
            drop.extend(_data_extents(vol, s))
    return drop


def ntfs_usage(reader: Reader, *, keep_volatile: bool = False) -> FsUsage:
    """Used byte extents of the NTFS volume ``reader`` covers (a partition), plus its state."""
    vol = NtfsVolume(reader)
    boot = vol.boot
    usage = FsUsage(fs="ntfs", cluster_size=vol.cs, used=[], serial=boot.serial_text)
    used = _used_clusters(vol)
    # The boot sector is in cluster 0 (always marked used); the backup lies past the last cluster.
    extra: list[Extent] = [(0, boot.bytes_per_sector)]
    if boot.backup_boot_offset + boot.bytes_per_sector <= reader.size:
        extra.append((boot.backup_boot_offset, boot.bytes_per_sector))
    else:
        usage.warnings.append("the partition ends before the NTFS backup boot sector (volume was not "
                              "created to fill it); the backup boot sector is not imaged")
    used = Runs(iter_merged(heapq.merge(used, sorted(extra))))
    _volume_state(vol, usage)
    _check_mirror(vol, usage)
    drop: list[Extent] = []
    try:
        drop = merge_extents(_volatile(vol, usage, keep_volatile))
    except Error as e:
        # A damaged root index only costs space: the page/hibernation files are then imaged in full.
        usage.warnings.append(f"could not look up pagefile.sys/hiberfil.sys ({e.message}); imaged in full")
    if drop:
        # Runs cross-linked with the metadata (corruption) must never be zeroed on restore: that would
        # turn a damaged volume into an unmountable one.
        drop = subtract_extents(drop, merge_extents(extra + _metadata_extents(vol)))
        usage.zeroed = intersect_extents(used, drop)
        used = Runs(iter_subtract(used, drop))
    usage.used = used
    try:
        usage.has_windows = path_exists(vol, WINLOAD, directory=False)
        usage.has_bootmgr = (path_exists(vol, BOOTMGR, directory=False)
                             and path_exists(vol, BIOS_BCD, directory=False))
    except Error as e:
        usage.warnings.append(f"could not look up Windows/boot manager files ({e.message})")
    return usage
