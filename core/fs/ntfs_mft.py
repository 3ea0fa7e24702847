"""NTFS MFT file records: header, update-sequence fixups, attributes, runlists, $FILE_NAME.

Pure decoding of one record buffer (no I/O); `ntfs_volume` reads the buffers. Layouts after ntfs-3g
``layout.h`` and BOOT.md §5.5. Every offset and length read from the record is checked against the
record's bounds before use, so a corrupt record raises `FormatError` naming it, never IndexError.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from .c_ntfs import (ATTR_HEADER, ATTR_LIST_ENTRY, AT_END, FILE_NAME, FIXUP_STRIDE, MFT_HEADER,
                     MFT_RECORD_IN_USE, MFT_RECORD_IS_DIRECTORY, NON_RESIDENT, REF_MASK, RESIDENT)

@dataclass(frozen=True)
class Run:
    """One data run: ``length`` clusters at ``lcn`` (None = sparse) starting at file cluster ``vcn``."""

    vcn: int
    lcn: int | None
    length: int


@dataclass
class Attribute:
    """One attribute (or one extent of a non-resident attribute split over extension records)."""

    type: int
    name: str
    flags: int
    instance: int
    non_resident: bool
    value: bytes = b""              # resident value
    lowest_vcn: int = 0
    highest_vcn: int = -1
    mapping_pairs: bytes = b""
    allocated_size: int = 0
    data_size: int = 0
    initialized_size: int = 0


@dataclass
class MftRecord:
    number: int
    flags: int
    sequence: int
    base_ref: int
    attributes: list[Attribute]

    @property
    def in_use(self) -> bool:
        return bool(self.flags & MFT_RECORD_IN_USE)

    @property
    def is_directory(self) -> bool:
        return bool(self.flags & MFT_RECORD_IS_DIRECTORY)

    def find(self, type_: int, name: str = "") -> list[Attribute]:
        return [a for a in self.attributes if a.type == type_ and a.name == name]


@dataclass(frozen=True)
class FileName:
    parent: int  # record number of the parent directory
    parent_seq: int
    name: str
    namespace: int  # 0 POSIX, 1 Win32, 2 DOS, 3 Win32&DOS
    flags: int


def apply_fixups(buf: bytearray, magic: bytes, what: str) -> None:
    """Verify and undo the update-sequence fixups of a multi-sector record, in place."""
    if bytes(buf[:4]) != magic:
        raise FormatError(what=what, detail=f"magic {bytes(buf[:4])!r}, expected {magic!r}"
                                            + (" (failed multi-sector write)" if buf[:4] == b"BAAD" else ""))
    if len(buf) < 8 or len(buf) % FIXUP_STRIDE:
        raise FormatError(what=what, detail=f"size {len(buf)} is not a multiple of {FIXUP_STRIDE}")
    usa_ofs = int.from_bytes(buf[4:6], "little")
    usa_count = int.from_bytes(buf[6:8], "little")
    strides = len(buf) // FIXUP_STRIDE
    # ntfs-3g ntfs_mst_post_read_fixup_warn: odd offset, array past the record, or a count that does
    # not match the size are all corruption.
    if usa_ofs & 1 or usa_ofs < 8 or usa_count != strides + 1 or usa_ofs + 2 * usa_count > FIXUP_STRIDE - 2:
        raise FormatError(what=what,
                          detail=f"bad update sequence array (offset {usa_ofs}, count {usa_count})")
    usn = buf[usa_ofs:usa_ofs + 2]
    for i in range(strides):
        end = (i + 1) * FIXUP_STRIDE
        if buf[end - 2:end] != usn:
            raise FormatError(what=what, detail=f"update sequence mismatch in 512-byte block {i} "
                                                "(torn or corrupt write)")
    for i in range(strides):
        end = (i + 1) * FIXUP_STRIDE
        saved = usa_ofs + 2 * (i + 1)
        buf[end - 2:end] = buf[saved:saved + 2]


def _utf16(data: bytes, what: str) -> str:
    return data.decode("utf-16-le", errors="replace")


def _parse_attribute(buf: bytes, off: int, length: int, what: str) -> Attribute:
    h = ATTR_HEADER.parse(buf, off, what)
    name = ""
    if h["name_length"]:
        n_off = off + h["name_offset"]
        n_end = n_off + 2 * h["name_length"]
        if h["name_offset"] < 16 or n_end > off + length:
            raise FormatError(what=what, detail=f"attribute {h['type']:#x} name outside the attribute")
        name = _utf16(buf[n_off:n_end], what)
    attr = Attribute(type=h["type"], name=name, flags=h["flags"], instance=h["instance"],
                     non_resident=bool(h["non_resident"]))
    if h["non_resident"] == 0:
        if length < 24:
            raise FormatError(what=what, detail=f"resident attribute {h['type']:#x} too short ({length})")
        r = RESIDENT.parse(buf, off + 16, what)
        v_off, v_len = r["value_offset"], r["value_length"]
        if v_off < 24 or v_off + v_len > length:
            raise FormatError(what=what, detail=f"attribute {h['type']:#x} value ({v_off}+{v_len}) outside "
                                                f"its {length} bytes")
        attr.value = bytes(buf[off + v_off:off + v_off + v_len])
    elif h["non_resident"] == 1:
        if length < 64:
            raise FormatError(what=what, detail=f"non-resident attribute {h['type']:#x} too short ({length})")
        nr = NON_RESIDENT.parse(buf, off + 16, what)
        mp = nr["mapping_pairs_offset"]
        if not 64 <= mp <= length:
            raise FormatError(what=what, detail=f"attribute {h['type']:#x} mapping pairs offset {mp} invalid")
        if (nr["lowest_vcn"] < 0 or nr["highest_vcn"] < nr["lowest_vcn"] - 1 or nr["allocated_size"] < 0
                or not 0 <= nr["initialized_size"] <= max(nr["data_size"], 0)):
            raise FormatError(what=what, detail=f"attribute {h['type']:#x} has inconsistent sizes/VCNs")
        attr.lowest_vcn, attr.highest_vcn = nr["lowest_vcn"], nr["highest_vcn"]
        attr.allocated_size, attr.data_size = nr["allocated_size"], nr["data_size"]
        attr.initialized_size = nr["initialized_size"]
        attr.mapping_pairs = bytes(buf[off + mp:off + length])
    else:
        raise FormatError(what=what, detail=f"attribute {h['type']:#x} non-resident flag {h['non_resident']}")
    return attr


def parse_record(buf: bytes, number: int) -> MftRecord:
    """Decode a fixed-up MFT record (see `apply_fixups`) into its header and attributes."""
    what = f"MFT record {number}"
    h = MFT_HEADER.parse(buf, 0, what)
    size = len(buf)
    if not h["attrs_offset"] or h["bytes_in_use"] > size or h["attrs_offset"] + 4 > h["bytes_in_use"]:
        raise FormatError(what=what, detail=f"attributes offset {h['attrs_offset']} / bytes in use "
                                            f"{h['bytes_in_use']} outside the {size}-byte record")
    if h["bytes_allocated"] != size:
        raise FormatError(what=what, detail=f"allocated size {h['bytes_allocated']} != record size {size}")
    attrs: list[Attribute] = []
    off = h["attrs_offset"]
    end = h["bytes_in_use"]
    # Each attribute is at least 16 bytes long, so the loop runs at most size/16 times.
    while True:
        if off + 4 > end:
            raise FormatError(what=what, detail="attributes run past bytes in use without an end marker")
        type_ = int.from_bytes(buf[off:off + 4], "little")
        if type_ == AT_END:
            break
        if off + 16 > end:
            raise FormatError(what=what, detail=f"attribute header at {off} past bytes in use")
        length = int.from_bytes(buf[off + 4:off + 8], "little")
        if length < 16 or off + length > end:
            raise FormatError(what=what, detail=f"attribute {type_:#x} at {off} has length {length} "
                                                f"overflowing the record (in use {end})")
        attrs.append(_parse_attribute(buf, off, length, what))
        off += length
    return MftRecord(number=number, flags=h["flags"], sequence=h["sequence"], base_ref=h["base_ref"],
                     attributes=attrs)


def decode_runlist(attr: Attribute, nr_clusters: int, what: str) -> list[Run]:
    """Decode the mapping pairs of a non-resident attribute extent; every LCN must lie in the volume."""
    data = attr.mapping_pairs
    runs: list[Run] = []
    vcn = attr.lowest_vcn
    lcn = 0
    pos = 0
    # Each pair takes at least 2 bytes, so the loop is bounded by the (record-sized) mapping pairs.
    while pos < len(data) and data[pos] != 0:
        header = data[pos]
        n_len, n_off = header & 0x0F, header >> 4
        if not 1 <= n_len <= 8 or n_off > 8 or pos + 1 + n_len + n_off > len(data):
            raise FormatError(what=what, detail=f"runlist header {header:#04x} at byte {pos} invalid")
        length = int.from_bytes(data[pos + 1:pos + 1 + n_len], "little", signed=True)
        if length <= 0:
            raise FormatError(what=what, detail=f"runlist run length {length} at byte {pos}")
        if n_off:
            lcn += int.from_bytes(data[pos + 1 + n_len:pos + 1 + n_len + n_off], "little", signed=True)
            if lcn < 0 or lcn + length > nr_clusters:
                raise FormatError(what=what, detail=f"run of {length} clusters at LCN {lcn} outside the "
                                                    f"volume ({nr_clusters} clusters)")
            runs.append(Run(vcn, lcn, length))
        else:
            runs.append(Run(vcn, None, length))
        vcn += length
        pos += 1 + n_len + n_off
    if pos >= len(data):
        raise FormatError(what=what, detail="runlist has no terminator")
    if vcn != attr.highest_vcn + 1 and not (attr.highest_vcn == -1 and not runs):
        raise FormatError(what=what, detail=f"runlist ends at VCN {vcn}, attribute says highest VCN "
                                            f"{attr.highest_vcn}")
    return runs


def parse_file_name(value: bytes, what: str) -> FileName:
    f = FILE_NAME.parse(value, 0, what)
    end = 0x42 + 2 * f["name_length"]
    if end > len(value):
        raise FormatError(what=what,
                          detail=f"$FILE_NAME name of {f['name_length']} chars overflows the value")
    return FileName(parent=f["parent_ref"] & REF_MASK, parent_seq=f["parent_ref"] >> 48,
                    name=_utf16(value[0x42:end], what), namespace=f["namespace"], flags=f["flags"])


@dataclass(frozen=True)
class AttrListEntry:
    type: int
    name: str
    lowest_vcn: int
    record: int
    instance: int


def parse_attribute_list(data: bytes, what: str) -> list[AttrListEntry]:
    """Decode an $ATTRIBUTE_LIST value (entries are >= 26 bytes, so the loop is bounded by its size)."""
    out: list[AttrListEntry] = []
    pos = 0
    while pos + ATTR_LIST_ENTRY.size <= len(data):
        e = ATTR_LIST_ENTRY.parse(data, pos, what)
        length = e["length"]
        if length < ATTR_LIST_ENTRY.size or pos + length > len(data):
            raise FormatError(what=what, detail=f"entry at {pos} has length {length}")
        name = ""
        if e["name_length"]:
            n_off = pos + e["name_offset"]
            n_end = n_off + 2 * e["name_length"]
            if e["name_offset"] < ATTR_LIST_ENTRY.size or n_end > pos + length:
                raise FormatError(what=what, detail=f"entry at {pos} name outside the entry")
            name = _utf16(data[n_off:n_end], what)
        out.append(AttrListEntry(e["type"], name, e["lowest_vcn"], e["mft_ref"] & REF_MASK, e["instance"]))
        pos += length
    return out
