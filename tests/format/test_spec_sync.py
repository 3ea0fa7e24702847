"""FORMAT.md's byte tables must list exactly the fields of core/format/c_image.py.

FORMAT.md is normative, so its tables are checked against the declarations: a spec that drifts from
the code misleads every reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.format import c_image
from core.structs import Struct

SPEC = Path(__file__).resolve().parents[2] / "FORMAT.md"

TABLES = {
    "Volume header": c_image.VolumeHeader,
    "Record header": c_image.RecordHeader,
    "Volume trailer": c_image.VolumeTrailer,
    "Manifest header": c_image.ManifestHeader,
    "Key slot": c_image.KeySlot,
    "Chunk table entry": c_image.ChunkEntry,
    "Extent map entry": c_image.ExtentEntry,
    "Unit table entry": c_image.UnitEntry,
    "Table block entry": c_image.TableBlock,
}


def spec_table(title: str) -> list[tuple[int, int, str]]:
    text = SPEC.read_text()
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#)", text, re.S | re.M)
    assert m, f"FORMAT.md has no section '{title}'"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            rows.append((int(cells[0]), int(cells[1]), cells[2]))
    return rows


@pytest.mark.parametrize("title", sorted(TABLES))
def test_table_matches_declaration(title: str) -> None:
    st: Struct = TABLES[title]
    declared = [(off, size, name) for name, (off, size) in st.offsets.items()]
    assert spec_table(title) == declared
    assert sum(size for _, size, _ in declared) == st.size


def test_magics_and_constants_are_in_the_spec() -> None:
    text = SPEC.read_text()
    for magic in (c_image.VOLUME_MAGIC, c_image.RECORD_MAGIC, c_image.TRAILER_MAGIC, c_image.MANIFEST_MAGIC):
        assert f"`{magic.decode()}`" in text
    assert str(c_image.CHUNK_SIZE) in text.replace(" ", "")
    assert f"# Image format, version {c_image.FORMAT_VERSION}" in text


def test_metadata_fields_match_declaration() -> None:
    """FORMAT.md's "Metadata fields" lists every key of `ImageMeta`, with its type, in declaration order."""
    from core.format.image_meta import ImageMeta
    from core.format.jsonrec import rows
    text = SPEC.read_text()
    m = re.search(r"^#+ Metadata fields\n(.*?)(?=^#)", text, re.S | re.M)
    assert m, "FORMAT.md has no section 'Metadata fields'"
    listed = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            listed.append((cells[0].strip("`"), cells[1]))
    assert listed == rows(ImageMeta)
