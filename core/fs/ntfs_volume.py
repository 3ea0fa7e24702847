"""An NTFS volume opened read-only: MFT records by number, attributes across extension records, streams.

Bootstraps like ntfs-3g (``ntfs_mft_load``): record 0 is read at the boot sector's MFT LCN; its unnamed
$DATA runlist (completed through its $ATTRIBUTE_LIST and extension records when the $MFT is fragmented
enough to need them) then locates every other record. Records and stream pieces are read through the
runlist, so a record or a read may span fragment boundaries.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from ..errors import FormatError, UnsupportedError
from ..io.reader import Reader, read_exact
from .c_ntfs import AT_ATTRIBUTE_LIST, AT_DATA, BOOT_SECTOR_SIZE
from .ntfs_boot import NtfsBoot, parse_ntfs_boot
from .ntfs_mft import (AttrListEntry, Attribute, MftRecord, Run, apply_fixups, decode_runlist,
                       parse_attribute_list, parse_record)

# Windows caps an $ATTRIBUTE_LIST at 256 KiB (the reason very fragmented files hit "insufficient system
# resources"); a larger one is corruption, and the cap bounds the buffer.
MAX_ATTRIBUTE_LIST = 256 * 1024
# Callers read streams in pieces of at most this size, so memory stays bounded whatever the volume size.
PIECE = 1024 * 1024


class Stream:
    """A non-resident attribute's data: its runs (merged over all extents) and sizes."""

    def __init__(self, runs: list[Run], data_size: int, initialized_size: int, what: str) -> None:
        self.runs = runs
        self.data_size = data_size
        self.initialized_size = initialized_size
        self.what = what
        self._starts = [r.vcn for r in runs]

    @property
    def clusters(self) -> int:
        return self.runs[-1].vcn + self.runs[-1].length if self.runs else 0


class NtfsVolume:
    """Read-only access to MFT records and attribute streams of one NTFS volume."""

    def __init__(self, reader: Reader, boot: NtfsBoot | None = None) -> None:
        self.reader = reader
        if boot is None:
            boot = parse_ntfs_boot(read_exact(reader, 0, BOOT_SECTOR_SIZE, "NTFS boot sector"), reader.size)
        self.boot = boot
        self.cs = boot.cluster_size
        self.record_size = boot.mft_record_size
        self.nr_clusters = boot.nr_clusters
        self.mft = self._load_mft()

    # --- low level -------------------------------------------------------------------------------

    def read_stream(self, stream: Stream, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` of a stream (sparse runs read as zeros)."""
        if offset < 0 or length < 0 or offset + length > stream.clusters * self.cs:
            raise FormatError(what=stream.what, detail=f"read {offset}+{length} beyond its "
                                                       f"{stream.clusters} allocated clusters")
        out = bytearray()
        pos = offset
        end = offset + length
        i = bisect.bisect_right(stream._starts, pos // self.cs) - 1
        while pos < end:
            if i < 0 or i >= len(stream.runs):
                raise FormatError(what=stream.what, detail=f"offset {pos} not mapped by the runlist")
            run = stream.runs[i]
            run_start = run.vcn * self.cs
            run_end = (run.vcn + run.length) * self.cs
            if not run_start <= pos < run_end:
                raise FormatError(what=stream.what, detail=f"offset {pos} not mapped by the runlist")
            n = min(end, run_end) - pos
            if run.lcn is None:
                out += bytes(n)
            else:
                out += read_exact(self.reader, run.lcn * self.cs + pos - run_start, n, stream.what)
            pos += n
            i += 1
        return bytes(out)

    def iter_stream(self, stream: Stream, size: int, piece: int = PIECE) -> Iterator[bytes]:
        """The first ``size`` bytes of a stream in pieces of at most ``piece`` bytes."""
        for off in range(0, size, piece):
            yield self.read_stream(stream, off, min(piece, size - off))

    def _record_from(self, stream: Stream, number: int) -> MftRecord:
        if number < 0 or (number + 1) * self.record_size > stream.data_size:
            raise FormatError(what=f"MFT record {number}",
                              detail=f"beyond the $MFT ({stream.data_size} bytes)")
        buf = bytearray(self.read_stream(stream, number * self.record_size, self.record_size))
        apply_fixups(buf, b"FILE", f"MFT record {number}")
        return parse_record(bytes(buf), number)

    # --- records ---------------------------------------------------------------------------------

    def record(self, number: int) -> MftRecord:
        return self._record_from(self.mft, number)

    @property
    def record_count(self) -> int:
        return self.mft.data_size // self.record_size

    def _load_mft(self) -> Stream:
        what = "MFT record 0 ($MFT)"
        off = self.boot.mft_lcn * self.cs
        buf = bytearray(read_exact(self.reader, off, self.record_size, what))
        apply_fixups(buf, b"FILE", what)
        rec0 = parse_record(bytes(buf), 0)
        if not rec0.in_use:
            raise FormatError(what=what, detail="not in use")
        first = [a for a in rec0.find(AT_DATA) if a.non_resident and a.lowest_vcn == 0]
        if len(first) != 1:
            raise FormatError(what=what, detail="no single non-resident unnamed $DATA starting at VCN 0")
        base = first[0]
        runs = decode_runlist(base, self.nr_clusters, f"{what} $DATA runlist")
        stream = Stream(runs, base.data_size, base.initialized_size, "$MFT")
        lists = rec0.find(AT_ATTRIBUTE_LIST)
        if not lists:
            self._check_covers(stream, base)
            return stream
        # Fragmented $MFT: the other extents of its $DATA live in extension records, which are found
        # through the part of the runlist already known (ntfs-3g ntfs_mft_load does the same).
        entries = [e for e in self._attribute_list(lists[0], "$MFT") if e.type == AT_DATA and not e.name
                   and e.record != 0]
        for e in sorted(entries, key=lambda e: e.lowest_vcn):
            if (e.record + 1) * self.record_size > stream.clusters * self.cs:
                raise UnsupportedError(detail=f"$MFT extension record {e.record} lies beyond the part of the "
                                              "$MFT mapped so far; cannot bootstrap this MFT")
            ext = self._record_from(Stream(stream.runs, stream.clusters * self.cs, 0, "$MFT"), e.record)
            found = [a for a in ext.find(AT_DATA) if a.non_resident and a.lowest_vcn == e.lowest_vcn]
            if not found:
                raise FormatError(what=f"MFT record {e.record}", detail="$MFT $DATA extent named by the "
                                                                        "attribute list is missing")
            more = decode_runlist(found[0], self.nr_clusters, f"MFT record {e.record} $DATA runlist")
            if more and more[0].vcn != stream.clusters:
                raise FormatError(what="$MFT", detail=f"runlist extent starts at VCN {more[0].vcn}, "
                                                      f"expected {stream.clusters}")
            stream = Stream(stream.runs + more, base.data_size, base.initialized_size, "$MFT")
        self._check_covers(stream, base)
        return stream

    def _check_covers(self, stream: Stream, attr: Attribute) -> None:
        if stream.clusters * self.cs < attr.data_size:
            raise FormatError(what=stream.what, detail=f"runlist maps {stream.clusters} clusters, fewer than "
                                                       f"its data size {attr.data_size}")

    def _attribute_list(self, attr: Attribute, what: str) -> list[AttrListEntry]:
        if not attr.non_resident:
            data = attr.value
        else:
            if attr.data_size > MAX_ATTRIBUTE_LIST:
                raise FormatError(what=what, detail=f"$ATTRIBUTE_LIST of {attr.data_size} bytes exceeds "
                                                    f"{MAX_ATTRIBUTE_LIST}")
            runs = decode_runlist(attr, self.nr_clusters, f"{what} $ATTRIBUTE_LIST runlist")
            stream = Stream(runs, attr.data_size, attr.initialized_size, what)
            data = self.read_stream(stream, 0, attr.data_size)
        return parse_attribute_list(data, f"{what} $ATTRIBUTE_LIST")

    # --- attributes ------------------------------------------------------------------------------

    def attributes(self, rec: MftRecord, type_: int, name: str = "") -> list[Attribute]:
        """All extents of attribute (type, name) of a base record, following its $ATTRIBUTE_LIST."""
        what = f"MFT record {rec.number}"
        lists = rec.find(AT_ATTRIBUTE_LIST)
        if not lists:
            return rec.find(type_, name)
        out: list[Attribute] = []
        cache: dict[int, MftRecord] = {rec.number: rec}
        for e in self._attribute_list(lists[0], what):
            if e.type != type_ or e.name != name:
                continue
            if e.record not in cache:
                ext = self.record(e.record)
                if ext.base_ref & ((1 << 48) - 1) != rec.number:
                    raise FormatError(what=f"MFT record {e.record}",
                                      detail=f"extension record does not belong to base record {rec.number}")
                cache[e.record] = ext
            match = [a for a in cache[e.record].find(type_, name) if a.instance == e.instance]
            if not match:
                raise FormatError(what=f"MFT record {e.record}", detail=f"attribute {type_:#x} named by the "
                                                                       f"attribute list of {what} is missing")
            out.extend(match)
        return out

    def stream(self, rec: MftRecord, type_: int, name: str = "") -> Stream | bytes | None:
        """The attribute's data: a `Stream` when non-resident, the value when resident, None if absent."""
        what = f"MFT record {rec.number} attribute {type_:#x}" + (f" {name!r}" if name else "")
        extents = self.attributes(rec, type_, name)
        if not extents:
            return None
        if not extents[0].non_resident:
            return extents[0].value
        extents = sorted((a for a in extents if a.non_resident), key=lambda a: a.lowest_vcn)
        runs: list[Run] = []
        for a in extents:
            more = decode_runlist(a, self.nr_clusters, what)
            expected = runs[-1].vcn + runs[-1].length if runs else 0
            if a.lowest_vcn != expected:
                raise FormatError(what=what,
                                  detail=f"extent starts at VCN {a.lowest_vcn}, expected {expected}")
            runs.extend(more)
        first = extents[0]
        if first.lowest_vcn != 0:
            raise FormatError(what=what, detail="no extent starting at VCN 0")
        return Stream(runs, first.data_size, first.initialized_size, what)

    def read_value(self, rec: MftRecord, type_: int, name: str, cap: int) -> bytes | None:
        """Whole attribute value, resident or not; refuses values larger than ``cap`` bytes."""
        s = self.stream(rec, type_, name)
        if s is None or isinstance(s, bytes):
            return s
        if s.data_size > cap:
            raise FormatError(what=s.what, detail=f"{s.data_size} bytes exceeds the {cap}-byte limit")
        return self.read_stream(s, 0, s.data_size)
