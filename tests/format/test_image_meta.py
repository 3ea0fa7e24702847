"""The typed image metadata reads what earlier versions wrote and writes it back byte for byte.

``data/meta_v1/`` holds the metadata and summary JSON, exactly as the manifests held them, of images
written by the code before `ImageMeta` existed (a full MBR backup, an incremental onto it, a merge, a
GPT backup of the system partitions, a disk without a partition table).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from core.errors import FormatError
from core.format.image_meta import ImageMeta

DATA = Path(__file__).parent / "data" / "meta_v1"
SAMPLES = sorted(p.name.removesuffix(".meta.json") for p in DATA.glob("*.meta.json"))


def _load(name: str) -> tuple[bytes, Any]:
    raw = (DATA / f"{name}.meta.json").read_bytes()
    return raw, json.loads(raw)


@pytest.mark.parametrize("name", SAMPLES)
def test_old_metadata_reserialises_identically(name: str) -> None:
    raw, value = _load(name)
    meta = ImageMeta.from_json(value, value["id"], name)
    assert json.dumps(meta.to_json(), sort_keys=True).encode() == raw
    summary_raw = (DATA / f"{name}.summary.json").read_bytes()
    summary = json.loads(summary_raw)
    written = meta.summary(summary["bytes"], summary["encrypted"])
    assert json.dumps(written, sort_keys=True).encode() == summary_raw


def test_samples_cover_every_shape() -> None:
    metas = {n: ImageMeta.from_json(_load(n)[1], _load(n)[1]["id"], n) for n in SAMPLES}
    assert {m.kind for m in metas.values()} == {"full", "incremental"}
    assert any(m.merged_from for m in metas.values()) and any(m.table is None for m in metas.values())
    assert {m.table.scheme for m in metas.values() if m.table} == {"mbr", "gpt"}
    assert any(not p.included for m in metas.values() if m.table for p in m.table.partitions)


def test_unknown_keys_are_ignored_and_kept() -> None:
    raw, value = _load("mbr-full")
    value["later_version_field"] = {"x": [1, 2]}
    meta = ImageMeta.from_json(value, value["id"], "m")
    assert meta.to_json() == value


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _paths(v, path + (i,))


BAD = [None, -1, 1 << 64, 1.5, True, "x", "", [], [[0]], {}, {"a": 1}]


@pytest.mark.parametrize("name", ["mbr-incremental", "gpt-part3", "mbr-merged"])
def test_any_wrong_value_is_a_format_error(name: str) -> None:
    """Every key replaced by values of other types or out of range: parsed or refused with our own error."""
    _, value = _load(name)
    refused = 0
    for path in list(_paths(value))[1:]:
        for bad in BAD:
            v = copy.deepcopy(value)
            node = v
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = bad
            try:
                ImageMeta.from_json(v, value["id"], name)
            except FormatError as e:
                assert "metadata field" in e.message
                refused += 1
    assert refused > 100


def test_checks_across_fields() -> None:
    _, value = _load("mbr-incremental")
    with pytest.raises(FormatError, match="'chain'"):
        ImageMeta.from_json({**value, "kind": "full"}, value["id"], "m")
    with pytest.raises(FormatError, match=r"volumes\[0\].name"):
        ImageMeta.from_json(value, "20990101-000000-abcdef", "m")
    table = copy.deepcopy(value["table"])
    table["meta"] = [a for a in table["meta"] if a["role"] != "mbr"]
    with pytest.raises(FormatError, match="table.meta"):
        ImageMeta.from_json({**value, "table": table}, value["id"], "m")
