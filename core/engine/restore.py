"""Restore an image onto a disk (or a disk-image file) at the original partition offsets.

`plan_restore` reads and authenticates the manifest, validates every volume's structure and checks
the target (never the source under any alias, not mounted or in use, writable, big enough, same
sector size) without writing a byte; `execute_restore` then writes:

1. the first sector (and the GPT headers) are zeroed first, so that an interrupted restore leaves a
   disk with no partition table, which no one can mistake for a good copy;
2. every chunk, verified (authenticated, decompressed, digest-checked) before any of it is written;
3. the zero extents (pagefile.sys / hiberfil.sys contents, blank blocks of raw partitions);
4. last, the partition table (for GPT, primary and backup rewritten for the target's size).
A rerun of the same restore completes an interrupted one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..disk import gpt, mbr
from ..disk.device import Disk, open_target, recheck
from ..disk.discover import describe
from ..disk.model import Extent, merge_extents, subtract_extents
from ..errors import TargetWriteError, UsageError
from ..progress import Event, Progress
from .chain import Chain
from .pipeline import Ordered
from .repo import Repository

_ZEROS = bytes(4 << 20)


@dataclass
class RestorePlan:
    image_id: str
    target: str
    target_description: str
    target_size: int
    sector_size: int
    required_size: int
    scheme: str
    partitions: list[dict[str, Any]]
    data_bytes: int
    zero_bytes: int
    warnings: list[str] = field(default_factory=list)
    # Held between plan and execute; not part of the printed plan.
    _chain: Chain | None = field(default=None, repr=False)
    _disk: Disk | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "target": self.target, "target_description": self.target_description,
                "target_size": self.target_size, "sector_size": self.sector_size,
                "required_size": self.required_size, "scheme": self.scheme, "partitions": self.partitions,
                "data_bytes": self.data_bytes, "zero_bytes": self.zero_bytes, "warnings": self.warnings}

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        if self._chain is not None:
            self._chain.close()
            self._chain = None


@dataclass
class RestoreResult:
    image_id: str
    target: str
    written_bytes: int
    seconds: float
    warnings: list[str]
    unreadable: list[list[int]]

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "target": self.target, "written_bytes": self.written_bytes,
                "seconds": round(self.seconds, 3), "warnings": self.warnings,
                "unreadable_in_source": self.unreadable}


def _required_size(meta: dict[str, Any]) -> tuple[int, list[Extent]]:
    """Bytes the target needs, and the table's own areas (written last, not from the data pass)."""
    table = meta.get("table")
    if not table:
        return int(meta["source"]["size"]), []
    parts = [p for p in table["partitions"] if p["included"]]
    need = max([p["start"] + p["size"] for p in parts] + [0])
    meta_areas = [(m["offset"], m["length"]) for m in table["meta"]]
    for m in table["meta"]:
        if m["role"] == "gpt-backup":
            need += m["length"]  # the backup GPT goes at the end of whatever disk we write
        elif m["role"] in ("mbr", "ebr", "gpt-primary"):
            need = max(need, m["offset"] + m["length"])
    return need, meta_areas


def plan_restore(folder: str, image_id: str | None, target: str, password: Callable[[], bytes | None],
                 progress: Progress) -> RestorePlan:
    """Everything up to (not including) the first write. The caller shows it and asks to confirm."""
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    progress.report(Event("check", message=f"checking the volumes of image {image_id} and its chain"))
    chain = Chain(repo, image_id, password)  # structural pre-flight: every volume of every image intact
    try:
        return _plan(repo, image_id, chain, target)
    except BaseException:
        chain.close()
        raise


def _plan(repo: Repository, image_id: str, chain: Chain, target: str) -> RestorePlan:
    manifest = chain.point
    meta = manifest.meta
    required, _ = _required_size(meta)
    sector_size = int(meta["source"].get("logical_sector_size", 512))
    image_paths = [os.path.join(repo.path, v["name"]) for m in chain.manifests for v in m.meta["volumes"]]
    image_paths += [repo.manifest_path(m.image_id) for m in chain.manifests]
    disk = open_target(target, sources=[], required_size=required, sector_size=sector_size, image_paths=image_paths)
    table = meta.get("table")
    warnings: list[str] = []
    parts = []
    if table:
        for p in table["partitions"]:
            if p["included"]:
                parts.append({k: p.get(k) for k in ("number", "start", "size", "role", "fs", "label", "type_id")})
    src_size = int(meta["source"]["size"])
    if disk.size < src_size:
        warnings.append(f"target is {src_size - disk.size} bytes smaller than the source; data outside the "
                        "partitions beyond the target's end is not restored")
    if meta.get("unreadable"):
        warnings.append(f"the source had {len(meta['unreadable'])} unreadable ranges at backup time; "
                        "those sectors are not restored")
    zero_bytes = sum(n for _, n in meta.get("zero_extents", []))
    return RestorePlan(image_id, target, describe(disk), disk.size, sector_size, required,
                       table["scheme"] if table else "none", parts, int(meta["stats"]["data_bytes"]), zero_bytes,
                       warnings, chain, disk)


def execute_restore(plan: RestorePlan, progress: Progress) -> RestoreResult:
    """Write the image to the target. On any failure the target is left without a partition table."""
    if plan._disk is None or plan._chain is None:
        raise UsageError(detail="restore plan was already used or closed")
    started = time.monotonic()
    disk, chain = plan._disk, plan._chain
    meta = chain.point.meta
    _, meta_areas = _required_size(meta)
    recheck(disk)
    ss = plan.sector_size
    written = 0
    try:
        # Step 1: make the target visibly unfinished before any data lands.
        invalid = [(0, ss)]
        if plan.scheme == "gpt":
            invalid += [(ss, ss), (disk.size - ss, ss)]
        for off, n in invalid:
            disk.pwrite(off, bytes(n))
        disk.sync()
        saved: dict[int, bytearray] = {off: bytearray(n) for off, n in meta_areas}
        total = plan.data_bytes + plan.zero_bytes
        by_chunk = chain.extents_by_chunk()

        def load(key: tuple[int, int]) -> tuple[tuple[int, int], bytes]:
            return key, chain.read_chunk(*key)

        # Step 2: data, each chunk verified before any of its bytes is written; every chunk of the
        # chain that the point needs is read once, in the order it lies on the backup medium.
        for key, raw in Ordered(load, chain.read_order(by_chunk)):
            progress.check()
            view = memoryview(raw)
            for disk_off, length, chunk_off in by_chunk[key]:
                for off, ln in _clip(disk_off, length, meta_areas, disk.size, saved, view, chunk_off):
                    disk.pwrite(off, view[chunk_off + off - disk_off:chunk_off + off - disk_off + ln])
                    written += ln
            progress.report(Event("restore", written, total))
        # Step 3: zero extents.
        for off, n in meta.get("zero_extents", []):
            progress.check()
            end = min(off + n, disk.size)
            while off < end:
                k = min(len(_ZEROS), end - off)
                disk.pwrite(off, memoryview(_ZEROS)[:k])
                off += k
                written += k
        disk.sync()
        # Step 4: the partition table, last.
        for off, data in _table_writes(meta, saved, disk.size, ss):
            disk.pwrite(off, data)
        disk.sync()
        progress.report(Event("restore", total, total))
    except OSError as e:
        raise TargetWriteError(target=plan.target, detail=f"{e.strerror or e}; the target is left unfinished "
                                                         "(no partition table): run the restore again") from e
    finally:
        plan.close()
    return RestoreResult(plan.image_id, plan.target, written, time.monotonic() - started, plan.warnings,
                         meta.get("unreadable", []))


def _clip(disk_off: int, length: int, meta_areas: list[Extent], limit: int, saved: dict[int, bytearray],
          view: memoryview, chunk_off: int) -> list[Extent]:
    """Parts of an extent to write now: not in a table area (saved for step 4), not past the end."""
    pieces = [(disk_off, length)]
    for m_off, m_len in meta_areas:
        lo, hi = max(disk_off, m_off), min(disk_off + length, m_off + m_len)
        if lo < hi:
            saved[m_off][lo - m_off:hi - m_off] = view[chunk_off + lo - disk_off:chunk_off + hi - disk_off]
    pieces = subtract_extents(pieces, merge_extents(meta_areas))
    out = []
    for off, n in pieces:
        if off < limit:
            out.append((off, min(n, limit - off)))
    return out


def _table_writes(meta: dict[str, Any], saved: dict[int, bytearray], disk_size: int,
                  ss: int) -> list[tuple[int, bytes]]:
    table = meta.get("table")
    if not table:
        return []
    roles = {m["offset"]: m["role"] for m in table["meta"]}
    all_kept = all(p["included"] for p in table["partitions"])
    keep = {p["number"] for p in table["partitions"] if p["included"]}
    same_size = disk_size == table["disk_size"]
    if table["scheme"] == "mbr":
        if all_kept:
            return [(off, bytes(b)) for off, b in saved.items()]
        sector0 = next(bytes(b) for off, b in saved.items() if roles[off] == "mbr")
        ebrs = {off: bytes(b) for off, b in saved.items() if roles[off] == "ebr"}
        return mbr.rewrite_for_disk(sector0, ebrs, ss, disk_size, keep)
    # GPT
    if all_kept and same_size:
        return [(off, bytes(b)) for off, b in saved.items()]
    sector0 = next(bytes(b) for off, b in saved.items() if roles[off] == "mbr")
    primary = next(bytes(b) for off, b in saved.items() if roles[off] == "gpt-primary")
    writes = gpt.rewrite_for_disk(primary[:ss], primary[ss:], ss, disk_size, None if all_kept else keep)
    writes.append((0, gpt.build_protective_mbr(disk_size, ss, sector0[:440],
                                              int.from_bytes(sector0[440:444], "little"))))
    return writes
