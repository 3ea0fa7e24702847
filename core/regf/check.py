"""Consistency check of a hive beyond what reading needs: the invariants Windows relies on.

Used after writing (and by tests) to prove the writer keeps what Windows expects: subkey lists sorted
by upper-cased name with correct lh hashes / lf hints, parent links, max-name-length fields at least
the longest name, security cells referenced no more often than their reference count says, and the
base-block fields (sequence numbers, checksum, hive-bins size) consistent with the bins.
"""

from __future__ import annotations

from collections import Counter

from .c_regf import base_block_checksum
from .cells import lf_hint, lh_hash, name_bytes_len, parse_subkey_list, sort_key
from .hive import Hive


def check_hive(hive: Hive) -> list[str]:
    """Problems found (empty list = consistent). Reading errors propagate as `FormatError`."""
    problems: list[str] = []
    h = hive.header
    if h.seq1 != h.seq2:
        problems.append(f"sequence numbers differ: {h.seq1} != {h.seq2}")
    if base_block_checksum(hive.data) != h.checksum:
        problems.append("base block checksum is wrong")
    if sum(size for _, size in hive.bins) != h.hbins_size:
        problems.append("hbins do not add up to the hive bins data size")
    sk_refs: Counter[int] = Counter()
    for key in hive.walk():
        nk = key.nk
        sk_refs[nk.security] += 1
        subs = key.subkeys()
        names = [s.name for s in subs]
        order = [sort_key(n) for n in names]
        if any(a >= b for a, b in zip(order, order[1:])):
            problems.append(f"{key.path!r}: subkeys not in Windows order")
        for s in subs:
            if s.nk.parent != key.offset:
                problems.append(f"{s.path!r}: parent link {s.nk.parent:#x} != {key.offset:#x}")
        if names and (nk.max_subkey_name & 0xFFFF) < max(name_bytes_len(n) for n in names):
            problems.append(f"{key.path!r}: max subkey name length too small")
        values = key.values()
        if values and nk.max_value_name < max(name_bytes_len(v.name) for v in values):
            problems.append(f"{key.path!r}: max value name length too small")
        if nk.subkey_count:
            problems.extend(_check_leaves(hive, key.path, nk.subkey_list))
    for sk, refs in sk_refs.items():
        count = hive.sk(sk).refcount
        if count < refs:
            problems.append(f"security cell {sk:#x}: reference count {count} < {refs} keys using it")
    return problems


def _check_leaves(hive: Hive, path: str, list_off: int) -> list[str]:
    out = []
    top = parse_subkey_list(hive.cell(list_off), f"{list_off:#x}")
    leaf_offsets = top.offsets if top.kind == "ri" else [list_off]
    for leaf_off in leaf_offsets:
        data = hive.cell(leaf_off)
        leaf = parse_subkey_list(data, f"{leaf_off:#x}")
        if leaf.kind not in ("lf", "lh"):
            continue
        for i, off in enumerate(leaf.offsets):
            name = hive.nk(off).name
            stored = bytes(data[8 + i * 8:12 + i * 8])
            if leaf.kind == "lh" and stored != lh_hash(name).to_bytes(4, "little"):
                out.append(f"{path!r}: lh hash of {name!r} is wrong")
            # lf hints written by other tools vary for non-ASCII names; only ASCII ones are checked.
            if leaf.kind == "lf" and name[:4].isascii() and stored.upper() != lf_hint(name).upper():
                out.append(f"{path!r}: lf hint of {name!r} is wrong")
    return out
