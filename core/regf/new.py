"""A new, empty, clean hive: what Windows' own hive creation leaves before any key is added.

One 4096-byte base block and one 4096-byte hbin holding the root key (``nk`` with the hive-entry,
no-delete and compressed-name flags), its security cell (an ``sk`` ring of one, referenced once) and a
free cell over the rest of the bin. Both sequence numbers are equal and the checksum is right, so the
result opens clean and `HiveWriter` fills it like any other hive (new keys share the root's security
cell). Every record is built from its declared table in `c_regf`; nothing here types an offset.
"""

from __future__ import annotations

import struct

from ..errors import UsageError
from .alloc import cell_size_for
from .c_regf import (ACE_HEADER, ACL_HEADER, BASE_BLOCK, BASE_BLOCK_SIZE, HBIN_ALIGN, HBIN_HEADER,
                     KEY_COMP_NAME, KEY_HIVE_ENTRY, KEY_NO_DELETE, MIN_CELL, NK, NO_CELL, SE_DACL_PRESENT,
                     SE_SELF_RELATIVE, SECURITY_DESCRIPTOR, SID_HEADER, SK, base_block_checksum)
from .cells import encode_name
from .hive import Hive

# Well-known SIDs as (identifier authority, sub-authorities).
SID_BUILTIN_ADMINISTRATORS = (5, (32, 544))
SID_BUILTIN_USERS = (5, (32, 545))
SID_LOCAL_SYSTEM = (5, (18,))
SID_CREATOR_OWNER = (3, (0,))

KEY_ALL_ACCESS = 0x000F003F
KEY_READ = 0x00020019
CONTAINER_INHERIT = 0x02

# What Windows 7 gives the root of SYSTEM and of a BCD store: owner Administrators, group SYSTEM;
# full control for Administrators, SYSTEM and the creator owner, read for Users, inherited by subkeys.
DEFAULT_ACES = ((KEY_READ, SID_BUILTIN_USERS), (KEY_ALL_ACCESS, SID_BUILTIN_ADMINISTRATORS),
                (KEY_ALL_ACCESS, SID_LOCAL_SYSTEM), (KEY_ALL_ACCESS, SID_CREATOR_OWNER))

FILE_NAME_CHARS = 31  # the base block keeps the last 31 UTF-16 characters of the file's path


def sid(authority: int, subs: tuple[int, ...]) -> bytes:
    return (SID_HEADER.build(revision=1, sub_count=len(subs), authority=authority.to_bytes(6, "big"))
            + struct.pack(f"<{len(subs)}I", *subs))


def security_descriptor(owner: tuple[int, tuple[int, ...]] = SID_BUILTIN_ADMINISTRATORS,
                        group: tuple[int, tuple[int, ...]] = SID_LOCAL_SYSTEM,
                        aces: tuple[tuple[int, tuple[int, tuple[int, ...]]], ...] = DEFAULT_ACES) -> bytes:
    """A self-relative descriptor: header, DACL of access-allowed ACEs (container-inherit), owner, group."""
    body = b""
    for mask, who in aces:
        s = sid(*who)
        head = ACE_HEADER.build(type=0, flags=CONTAINER_INHERIT, size=ACE_HEADER.size + len(s), mask=mask)
        body += head + s
    dacl = ACL_HEADER.build(revision=2, size=ACL_HEADER.size + len(body), ace_count=len(aces)) + body
    owner_sid, group_sid = sid(*owner), sid(*group)
    dacl_at = SECURITY_DESCRIPTOR.size
    owner_at = dacl_at + len(dacl)
    group_at = owner_at + len(owner_sid)
    head = SECURITY_DESCRIPTOR.build(revision=1, control=SE_SELF_RELATIVE | SE_DACL_PRESENT, owner=owner_at,
                                     group=group_at, dacl=dacl_at)
    return head + dacl + owner_sid + group_sid


def new_hive(root_name: str, *, minor: int = 5, file_name: str = "", timestamp: int = 0,
             descriptor: bytes | None = None, name: str = "new hive") -> Hive:
    """An empty clean hive (version 1.``minor``) whose root key is ``root_name``; sequence numbers 1/1."""
    raw_name, compressed = encode_name(root_name)
    sd = descriptor if descriptor is not None else security_descriptor()
    nk_off = HBIN_HEADER.size  # the first cell of the first bin, where Windows puts the root
    flags = KEY_HIVE_ENTRY | KEY_NO_DELETE | (KEY_COMP_NAME if compressed else 0)
    nk = NK.build(signature=b"nk", flags=flags, timestamp=timestamp, parent=NO_CELL, subkey_list=NO_CELL,
                  volatile_subkey_list=NO_CELL, value_list=NO_CELL,
                  security=nk_off + cell_size_for(NK.size + len(raw_name)),  # the sk cell follows the nk
                  class_offset=NO_CELL, name_length=len(raw_name)) + raw_name
    sk_off = nk_off + cell_size_for(len(nk))
    sk = SK.build(signature=b"sk", flink=sk_off, blink=sk_off, refcount=1, descriptor_size=len(sd)) + sd
    free_off = sk_off + cell_size_for(len(sk))
    if HBIN_ALIGN - free_off < MIN_CELL:
        raise UsageError(detail=f"root name and security descriptor do not fit one {HBIN_ALIGN}-byte hbin")

    path = file_name[-FILE_NAME_CHARS:].encode("utf-16-le")
    data = bytearray(BASE_BLOCK_SIZE + HBIN_ALIGN)
    data[:BASE_BLOCK.size] = BASE_BLOCK.build(
        signature=b"regf", seq1=1, seq2=1, timestamp=timestamp, major=1, minor=minor, file_type=0,
        file_format=1, root_cell=nk_off, hbins_size=HBIN_ALIGN, clustering=1, file_name=path)
    struct.pack_into("<I", data, BASE_BLOCK.offsets["checksum"][0], base_block_checksum(data))
    bins = BASE_BLOCK_SIZE
    data[bins:bins + HBIN_HEADER.size] = HBIN_HEADER.build(signature=b"hbin", offset=0, size=HBIN_ALIGN,
                                                           timestamp=timestamp)
    for off, cell in ((nk_off, nk), (sk_off, sk)):
        struct.pack_into("<i", data, bins + off, -cell_size_for(len(cell)))  # negative: allocated
        data[bins + off + 4:bins + off + 4 + len(cell)] = cell
    struct.pack_into("<i", data, bins + free_off, HBIN_ALIGN - free_off)  # the rest: one free cell
    return Hive(data, name=name)
