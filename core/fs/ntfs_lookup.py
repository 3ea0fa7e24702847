"""Find files by path on NTFS through the directory indexes ($I30: $INDEX_ROOT + INDX blocks).

Used to locate pagefile.sys / hiberfil.sys and to tell whether a volume holds Windows or the boot
manager. The B+tree is walked completely instead of searched by collation: comparing names with the
volume's $UpCase table is not needed then, and a full walk of one directory is cheap (System32 is a few
hundred KiB of index). Only live nodes are visited (entries reachable from the root), so entries of
deleted files left in unused INDX blocks are never found. Names compare case-insensitively (Win32
and DOS names alike, as Windows path lookup does).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import FormatError, UnsupportedError
from .c_ntfs import (AT_INDEX_ALLOCATION, AT_INDEX_ROOT, ENTRY_END, ENTRY_NODE, INDEX_ENTRY, INDEX_HEADER,
                     INDEX_NAME, INDEX_ROOT, INDX_HEADER, REF_MASK, ROOT_DIRECTORY)
from .ntfs_mft import FileName, apply_fixups, parse_file_name
from .ntfs_volume import NtfsVolume, Stream


# A directory whose index needs more than 65536 blocks (256 MiB of 4 KiB blocks, millions of names) is
# not something a lookup of a system file should walk; the cap bounds the time on corrupt trees.
MAX_INDEX_NODES = 65536
MAX_PATH_DEPTH = 64  # paths we look up are a few components; the cap stops absurd inputs


def _entries(buf: bytes, hdr_off: int, what: str) -> Iterator[tuple[int, int, FileName | None, int | None]]:
    """Entries of one node: (record number, sequence, file name or None for the end entry, child VCN)."""
    h = INDEX_HEADER.parse(buf, hdr_off, what)
    pos = hdr_off + h["entries_offset"]
    end = hdr_off + h["index_length"]
    if h["entries_offset"] < INDEX_HEADER.size or end > len(buf) or pos > end:
        raise FormatError(what=what, detail=f"index header offsets {h['entries_offset']}/{h['index_length']} "
                                            f"outside the {len(buf)}-byte node")
    # Entries are at least 16 bytes, so the loop is bounded by the node size.
    while True:
        e = INDEX_ENTRY.parse(buf[:end], pos, what)
        length, flags = e["length"], e["flags"]
        if length < INDEX_ENTRY.size or pos + length > end:
            raise FormatError(what=what, detail=f"index entry at {pos} has length {length}")
        child = None
        if flags & ENTRY_NODE:
            if length < INDEX_ENTRY.size + 8:
                raise FormatError(what=what, detail=f"index entry at {pos} too short for a sub-node VCN")
            child = int.from_bytes(buf[pos + length - 8:pos + length], "little", signed=True)
        name = None
        if not flags & ENTRY_END:
            key_end = pos + INDEX_ENTRY.size + e["key_length"]
            if key_end > pos + length:
                raise FormatError(what=what, detail=f"index entry at {pos} key overflows the entry")
            name = parse_file_name(buf[pos + INDEX_ENTRY.size:key_end], what)
        yield e["ref"] & REF_MASK, e["ref"] >> 48, name, child
        if flags & ENTRY_END:
            return
        pos += length


def iter_directory(vol: NtfsVolume, number: int) -> Iterator[tuple[int, int, FileName]]:
    """Every (record number, sequence, $FILE_NAME key) in the $I30 index of directory ``number``."""
    rec = vol.record(number)
    what = f"directory MFT record {number}"
    if not rec.in_use or not rec.is_directory:
        raise FormatError(what=what, detail="not an in-use directory")
    root = vol.read_value(rec, AT_INDEX_ROOT, INDEX_NAME, vol.record_size)
    if root is None:
        raise FormatError(what=what, detail="no $INDEX_ROOT $I30")
    r = INDEX_ROOT.parse(root, 0, what)
    block = r["index_block_size"]
    if block & (block - 1) or not 512 <= block <= 65536:
        raise FormatError(what=what, detail=f"index block size {block} invalid")
    # ntfs-3g: VCNs count clusters when blocks are at least a cluster, else 512-byte units.
    vcn_size = vol.cs if block >= vol.cs else 512
    alloc: Stream | None = None
    pending: list[int] = []
    for ref, seq, name, child in _entries(root, INDEX_ROOT.size, f"{what} $INDEX_ROOT"):
        if name is not None:
            yield ref, seq, name
        if child is not None:
            pending.append(child)
    if pending:
        s = vol.stream(rec, AT_INDEX_ALLOCATION, INDEX_NAME)
        if not isinstance(s, Stream):
            raise FormatError(what=what, detail="sub-nodes but no non-resident $INDEX_ALLOCATION")
        alloc = s
    seen: set[int] = set()
    while pending:
        vcn = pending.pop()
        if vcn in seen:
            raise FormatError(what=what, detail=f"index tree loop at VCN {vcn}")
        seen.add(vcn)
        if len(seen) > MAX_INDEX_NODES:
            raise UnsupportedError(detail=f"{what}: index larger than {MAX_INDEX_NODES} blocks")
        if alloc is None:  # cannot happen: set above whenever pending is non-empty; keeps mypy sure
            raise FormatError(what=what, detail="no $INDEX_ALLOCATION")
        off = vcn * vcn_size
        node_what = f"{what} INDX block VCN {vcn}"
        if vcn < 0 or off + block > alloc.clusters * vol.cs:
            raise FormatError(what=node_what, detail="outside the $INDEX_ALLOCATION")
        buf = bytearray(vol.read_stream(alloc, off, block))
        apply_fixups(buf, b"INDX", node_what)
        node = bytes(buf)
        if INDX_HEADER.parse(node, 0, node_what)["vcn"] != vcn:
            raise FormatError(what=node_what, detail="block records a different VCN")
        children: list[int] = []
        for ref, seq, name, child in _entries(node, INDX_HEADER.size, node_what):
            if name is not None:
                yield ref, seq, name
            if child is not None:
                children.append(child)
        pending.extend(reversed(children))


def find_child(vol: NtfsVolume, directory: int, name: str) -> int | None:
    """Record number of the in-use entry ``name`` (case-insensitive) of a directory, or None."""
    want = name.casefold()
    for ref, seq, fn in iter_directory(vol, directory):
        if fn.name.casefold() == want:
            rec = vol.record(ref)
            # A stale index entry (record reused or freed) does not count as the file.
            if rec.in_use and (seq == 0 or rec.sequence == seq):
                return ref
    return None


def find_path(vol: NtfsVolume, path: str) -> int | None:
    """Record number of ``path`` ("Windows/System32/winload.exe", "/" or "\\" separated, relative to
    the root, case-insensitive), or None when a component is missing."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) > MAX_PATH_DEPTH:
        raise FormatError(what="path", detail=f"more than {MAX_PATH_DEPTH} components")
    current = ROOT_DIRECTORY
    for i, part in enumerate(parts):
        if i and not vol.record(current).is_directory:
            return None
        found = find_child(vol, current, part)
        if found is None:
            return None
        current = found
    return current


def path_exists(vol: NtfsVolume, path: str, *, directory: bool | None = None) -> bool:
    """Whether ``path`` exists (and, if ``directory`` is given, is / is not a directory)."""
    n = find_path(vol, path)
    if n is None:
        return False
    return directory is None or vol.record(n).is_directory == directory
