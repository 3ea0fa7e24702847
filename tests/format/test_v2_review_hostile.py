"""Review of format version 2: hostile table blocks in a plain image are clean IntegrityErrors.

An attacker (or a buggy tool) rewrites an unencrypted image's manifest with valid digests: table
blocks recomputed, the body's block index and counts updated to match. Whatever the rows say
(overlaps across blocks, keys not rising, odd refs, bad tiling, huge row counts, unit rows out of
order, zero-length extents), verify, a restore, a read through the view and an incremental on top
end in `IntegrityError`: never a traceback of another kind, never a hang, never wrong bytes.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Callable

import blake3
import pytest
import zstandard

from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.restore import execute_restore, plan_restore
from core.engine.verify import verify
from core.engine.view import open_view
from core.errors import IntegrityError
from core.format import manifest as mf
from core.format.c_image import HOLE_REF, TOMBSTONE, ExtentEntry, TableBlock, UnitEntry
from core.format.manifest import Manifest
from core.format.tables import EXTENTS, UNITS
from core.progress import Progress

SIZE = 2 << 20
E = ExtentEntry.codec
U = UnitEntry.codec
Rows = list[tuple]  # unpacked rows
Blocks = list[tuple[str, Rows]]  # ("e" or "u", rows) in table-area order


def source(path: Path, generation: int) -> bytes:
    rnd = random.Random(5)
    data = bytearray(SIZE)
    data[0:600_000] = (b"lorem ipsum dolor " * 40_000)[:600_000]
    data[800_000:900_000] = rnd.randbytes(100_000)
    data[1_100_000:1_300_000] = (b"sit amet " * 30_000)[:200_000]
    data[1_500_000:1_700_000] = rnd.randbytes(200_000)
    if generation:
        for off in (5_000, 100_003, 300_000, 750_000, 1_200_000):
            data[off:off + 20_000] = bytes([generation]) * 20_000
        data[400_000:500_000] = bytes(100_000)  # was stored: tombstones and holes
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("hostile")
    folder = base / "bk"
    src = base / "src.img"
    d0 = source(src, 0)
    full = backup(str(src), str(folder), BackupOptions(), Progress()).image_id
    d1 = source(src, 1)
    inc = backup(str(src), str(folder), BackupOptions(mode="incremental"), Progress()).image_id
    return {"folder": folder, "full": full, "inc": inc, "d0": d0, "d1": d1, "src": src}


def rows_of(m: Manifest) -> tuple[Rows, Rows]:
    ext = [r for i in range(m.extents.block_count()) for r in E.iter_unpack(m.extents.block(i))]
    units = [r for i in range(m.units.block_count()) for r in U.iter_unpack(m.units.block(i))]
    return ext, units


def forge(folder: Path, image_id: str, blocks: Blocks,
          edit_index: Callable[[list[list], list[list]], None] | None = None,
          edit_meta: Callable[[dict], None] | None = None, gap: int = 0) -> None:
    """Rewrite ``image_id``'s manifest with these table blocks, every digest recomputed."""
    repo = Repository(str(folder))
    m = repo.load(image_id, lambda: None)
    start = m.tables_area[0]
    area = bytearray()
    eidx: list[list] = []
    uidx: list[list] = []
    for kind, rows in blocks:
        codec = E if kind == "e" else U
        packed = b"".join(codec.pack(*r) for r in rows)
        stored = zstandard.ZstdCompressor(level=3).compress(packed)
        first, last = (EXTENTS if kind == "e" else UNITS).keys(packed) if packed else (0, 0)
        (eidx if kind == "e" else uidx).append([first, last, start + len(area), len(stored), len(rows),
                                                 blake3.blake3(stored).digest()])
        area += stored
        area += bytes(gap)
    if edit_index:
        edit_index(eidx, uidx)
    meta = m.meta.to_json()
    meta.update(extent_count=sum(e[4] for e in eidx), unit_count=sum(e[4] for e in uidx),
                extent_blocks=len(eidx), unit_blocks=len(uidx))
    if edit_meta:
        edit_meta(meta)
    index = b"".join(TableBlock.codec.pack(*e) for e in eidx + uidx)
    head, keyslot, summary, body = mf._sections(m.image_uuid, False, None, None, m.summary, meta,
                                                m.chunks + index, len(area))
    digest = blake3.blake3(head + keyslot + summary + body).digest()
    m.close()
    (folder / f"{image_id}.manifest").write_bytes(head + keyslot + bytes(area) + summary + body + digest)


def outcomes(folder: Path, image_id: str, expected: bytes, src: Path, tmp: Path) -> dict[str, str]:
    """What verify, restore, a view read and an incremental on top do: 'ok' (with the right bytes),
    'integrity' or the name of any other exception, or 'WRONG BYTES'."""
    out: dict[str, str] = {}

    def run(name: str, f: Callable[[], bytes | None]) -> None:
        try:
            got = f()
        except IntegrityError:
            out[name] = "integrity"
        except Exception as e:  # noqa: BLE001 - what we look for
            out[name] = f"{type(e).__name__}: {e}"
        else:
            out[name] = "ok" if got is None or got == expected else "WRONG BYTES"

    run("verify", lambda: verify(str(folder), image_id, lambda: None, Progress()) and None)

    def restore() -> bytes:
        target = tmp / "target.img"
        target.write_bytes(bytes(SIZE))
        execute_restore(plan_restore(str(folder), image_id, str(target), lambda: None, Progress()), Progress())
        return target.read_bytes()

    run("restore", restore)

    def view() -> bytes:
        with open_view(str(folder), image_id, lambda: None) as v:
            return v.read(0, SIZE)

    run("view", view)

    def child() -> None:
        copy = tmp / "child"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
        # only this image and its ancestors: it becomes the latest
        for p in copy.iterdir():
            if not any(p.name.startswith(k) for k in _keep(folder, image_id)):
                p.unlink()
        # A parent's damaged extent map need not stop an incremental (it reads unit tables only);
        # then the new point must not verify or restore.
        r = backup(str(src), str(copy), BackupOptions(mode="incremental"), Progress())
        verify(str(copy), r.image_id, lambda: None, Progress())
        with open_view(str(copy), r.image_id, lambda: None) as v:
            return v.read(0, SIZE) if src.read_bytes() == expected else None

    run("incremental", child)
    return out


def _keep(folder: Path, image_id: str) -> list[str]:
    m = Repository(str(folder)).load(image_id, lambda: None)
    ids = [image_id] + [p.id for p in m.meta.chain]
    m.close()
    return ids


@pytest.fixture
def work(chain: dict[str, object], tmp_path: Path) -> dict[str, object]:
    folder = tmp_path / "bk"
    shutil.copytree(chain["folder"], folder)  # type: ignore[arg-type]
    return {**chain, "folder": folder}


def _case_rows(ext: Rows, units: Rows, case: str) -> Blocks | None:
    data = [r for r in ext if r[4] == 0]
    if case == "control":
        return [("e", ext), ("u", units)]
    if case == "control_one_row_blocks":
        return [("e", [r]) for r in ext] + [("u", [r]) for r in units]
    if case == "overlap_in_block":
        a = list(ext[1])
        a[0] = ext[0][0] + 1
        return [("e", [ext[0], tuple(a)] + ext[2:]), ("u", units)]
    if case == "keys_not_rising_in_block":
        return [("e", [ext[1], ext[0]] + ext[2:]), ("u", units)]
    if case == "zero_length_data":
        a = list(data[0])
        a[1] = 0
        return [("e", [tuple(a) if r == data[0] else r for r in ext]), ("u", units)]
    if case == "zero_length_hole":
        return [("e", [(ext[-1][0] + ext[-1][1] + 10, 0, 0, 0, HOLE_REF, 0)] if False else
                 ext + [(ext[-1][0] + ext[-1][1] + 10, 0, 0, 0, HOLE_REF, 0)]), ("u", units)]
    if case.startswith("ref_"):
        ref = int(case[4:])
        a = list(data[0])
        a[4] = ref
        return [("e", [tuple(a) if r == data[0] else r for r in ext]), ("u", units)]
    if case == "chunk_beyond_table":
        a = list(data[0])
        a[2] = 10_000
        return [("e", [tuple(a) if r == data[0] else r for r in ext]), ("u", units)]
    if case == "past_chunk_end":
        a = list(data[0])
        a[3] = 4 << 20
        return [("e", [tuple(a) if r == data[0] else r for r in ext]), ("u", units)]
    if case == "reserved_set":
        a = list(ext[0])
        a[5] = 7
        return [("e", [tuple(a)] + ext[1:]), ("u", units)]
    if case == "data_made_hole":  # a full image whose map has a hole where it held data
        a = list(data[0])
        a[2], a[3], a[4] = 0, 0, HOLE_REF
        return [("e", [tuple(a) if r == data[0] else r for r in ext]), ("u", units)]
    if case == "past_disk_end":
        return [("e", ext + [(SIZE + (1 << 40), 4096, data[0][2], 0, 0, 0)]), ("u", units)]
    if case == "units_out_of_order":
        return [("e", ext), ("u", [units[1], units[0]] + units[2:])]
    if case == "units_duplicate":
        return [("e", ext), ("u", [units[0], units[0]] + units[1:])]
    if case == "units_duplicate_across_blocks":
        return [("e", ext), ("u", units[:2]), ("u", units[1:])]
    if case == "units_falling_across_blocks":
        return [("e", ext), ("u", units[2:]), ("u", units[:2])]
    if case == "extents_falling_across_blocks":
        return [("e", ext[2:]), ("e", ext[:2]), ("u", units)]
    return None


CASES = ["control", "control_one_row_blocks", "overlap_in_block", "keys_not_rising_in_block",
         "zero_length_data", "zero_length_hole", "ref_1", "ref_2", "ref_65534", "chunk_beyond_table",
         "past_chunk_end", "reserved_set", "units_out_of_order", "units_duplicate",
         "units_duplicate_across_blocks", "units_falling_across_blocks", "extents_falling_across_blocks",
         "data_made_hole", "past_disk_end"]


PARAMS = [pytest.param(which, case)
          for which in ("full", "inc") for case in CASES
          if (which, case) != ("inc", "data_made_hole")]  # a hole in an incremental is a legal row


@pytest.mark.parametrize(("which", "case"), PARAMS)
def test_v2_review_hostile_rows(work: dict[str, object], tmp_path: Path, case: str, which: str) -> None:
    folder: Path = work["folder"]  # type: ignore[assignment]
    image_id: str = work[which]  # type: ignore[assignment]
    expected: bytes = work["d0" if which == "full" else "d1"]  # type: ignore[assignment]
    m = Repository(str(folder)).load(image_id, lambda: None)
    ext, units = rows_of(m)
    m.close()
    assert len(ext) >= 3 and len(units) >= 3, (len(ext), len(units))
    blocks = _case_rows(ext, units, case)
    assert blocks is not None
    forge(folder, image_id, blocks)
    got = outcomes(folder, image_id, expected, work["src"], tmp_path)  # type: ignore[arg-type]
    if case.startswith("control"):
        assert got == {k: "ok" for k in got}, got
    elif case.startswith("units_"):
        # A restore and a read need no unit table: they may go on, with the right bytes.
        assert got["verify"] == got["incremental"] == "integrity", got
        assert {got["restore"], got["view"]} <= {"ok", "integrity"}, got
    else:
        assert got == {k: "integrity" for k in got}, got


def _index_case(case: str) -> tuple[Callable | None, Callable | None, int]:
    """(edit_index, edit_meta, gap) of a case about the block index."""
    def shift(e: list[list], u: list[list]) -> None:
        e[1][2] += 1

    def rows_huge(e: list[list], u: list[list]) -> None:
        e[0][4] = 1 << 31

    def rows_4097(e: list[list], u: list[list]) -> None:
        e[0][4] = 4097

    def rows_zero(e: list[list], u: list[list]) -> None:
        e[0][4] = 0

    def swap_places(e: list[list], u: list[list]) -> None:
        e[0][2], e[1][2] = e[1][2], e[0][2]

    def dup_entry(e: list[list], u: list[list]) -> None:
        e.append(list(e[-1]))

    def stored_huge(e: list[list], u: list[list]) -> None:
        e[-1][3] = (1 << 32) - 1

    def count_off(meta: dict) -> None:
        meta["extent_count"] += 1

    def count_huge(meta: dict) -> None:
        meta["extent_count"] = (1 << 63) - 1

    return {
        "offset_shifted": (shift, None, 0),
        "rows_huge": (rows_huge, None, 0),
        "rows_4097": (rows_4097, None, 0),
        "rows_zero": (rows_zero, None, 0),
        "places_swapped": (swap_places, None, 0),
        "entry_duplicated": (dup_entry, None, 0),
        "stored_huge": (stored_huge, None, 0),
        "count_off": (None, count_off, 0),
        "count_huge": (None, count_huge, 0),
        "gap_between_blocks": (None, None, 3),
    }[case]


@pytest.mark.parametrize("case", ["offset_shifted", "rows_huge", "rows_4097", "rows_zero", "places_swapped",
                                  "entry_duplicated", "stored_huge", "count_off", "count_huge",
                                  "gap_between_blocks"])
def test_v2_review_hostile_index(work: dict[str, object], tmp_path: Path, case: str) -> None:
    folder: Path = work["folder"]  # type: ignore[assignment]
    image_id: str = work["inc"]  # type: ignore[assignment]
    m = Repository(str(folder)).load(image_id, lambda: None)
    ext, units = rows_of(m)
    m.close()
    edit_index, edit_meta, gap = _index_case(case)
    forge(folder, image_id, [("e", [r]) for r in ext] + [("u", [r]) for r in units],
          edit_index=edit_index, edit_meta=edit_meta, gap=gap)
    got = outcomes(folder, image_id, work["d1"], work["src"], tmp_path)  # type: ignore[arg-type]
    assert got == {k: "integrity" for k in got}, got
