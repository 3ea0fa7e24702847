"""R-33/R-34: our own parsers (manifest, volume header/trailer, records) under hostile bytes.

Structure-aware: besides raw mutations, fields are mutated and the digests re-computed (as a
malicious writer would), so the code after the digest checks is reached too. Only `core.errors.Error`
subclasses may escape, and each case stays small and fast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import blake3
import pytest
from hypothesis import given, strategies as st

from core.engine.backup import BackupOptions, backup
from core.engine.verify import verify
from core.errors import Error
from core.progress import Progress
from tests.format.test_corruption import tiny_source

BASE: dict[str, Path] = {}


@pytest.fixture(scope="module", autouse=True)
def base(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    backup(str(tiny_source(d / "t.img")), str(d / "bk"), BackupOptions(), Progress())
    BASE["dir"] = d
    BASE["bk"] = d / "bk"


def _fresh() -> tuple[Path, Path, Path]:
    dst = BASE["dir"] / "work"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(BASE["bk"], dst)
    return dst, next(dst.glob("*.v0001")), next(dst.glob("*.manifest"))


def _check(folder: Path) -> None:
    try:
        verify(str(folder), None, lambda: None, Progress())
    except Error:
        pass


mutation = st.tuples(st.integers(min_value=0, max_value=1 << 20), st.binary(min_size=1, max_size=16))


@given(st.lists(mutation, min_size=1, max_size=4), st.booleans())
def test_manifest_mutations(muts: list[tuple[int, bytes]], fix_digests: bool) -> None:
    folder, _, man = _fresh()
    data = bytearray(man.read_bytes())
    for off, val in muts:
        off %= len(data)
        data[off:off + len(val)] = val
    if fix_digests and len(data) >= 160:
        data[96:128] = blake3.blake3(bytes(data[:96])).digest()
        data[-32:] = blake3.blake3(bytes(data[:-32])).digest()
    man.write_bytes(bytes(data))
    _check(folder)


@given(st.lists(mutation, min_size=1, max_size=4), st.booleans(), st.integers(min_value=-64, max_value=64))
def test_volume_mutations(muts: list[tuple[int, bytes]], fix_header: bool, resize: int) -> None:
    folder, vol, _ = _fresh()
    data = bytearray(vol.read_bytes())
    for off, val in muts:
        off %= len(data)
        data[off:off + len(val)] = val
    if fix_header:
        data[96:128] = blake3.blake3(bytes(data[:96])).digest()
    if resize > 0:
        data += bytes(resize)
    elif resize < 0:
        del data[resize:]
    vol.write_bytes(bytes(data))
    _check(folder)


HOSTILE = [
    ("volumes", [{"number": 0, "name": "../../etc/passwd", "length": 1, "records": 0, "trailer_digest": "0" * 64}]),
    ("volumes", "not a list"),
    ("volumes", []),
    ("chunk_count", -1),
    ("chunk_count", 10**12),
    ("zero_extents", [[0, -5]]),
    ("zero_extents", [[0]]),
    ("source", {"size": "big"}),
    ("table", {"scheme": "mbr", "disk_size": 1, "sector_size": 512, "partitions": [{"number": 1}], "meta": []}),
    ("table", {"scheme": "gpt", "disk_size": 1, "sector_size": 512, "partitions": [], "meta": [
        {"offset": 0, "length": 10**9, "role": "mbr"}]}),
]


@pytest.mark.parametrize("field,value", HOSTILE)
def test_hostile_metadata_with_valid_digests(field: str, value: object, tmp_path: Path) -> None:
    """A manifest re-encoded by a malicious writer (all digests valid) is refused cleanly."""
    from core.engine.repo import Repository
    from core.engine.restore import plan_restore
    from core.format import manifest as mf
    folder, _, man = _fresh()
    repo = Repository(str(folder))
    image_id = repo.resolve(None)
    m = repo.load(image_id, lambda: None)
    man.write_bytes(mf.encode_json(m, {**m.meta.to_json(), field: value}, None))
    with pytest.raises(Error):
        verify(str(folder), None, lambda: None, Progress())
    target = tmp_path / "t.img"
    target.write_bytes(bytes(4 << 20))
    with pytest.raises(Error):
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    assert target.read_bytes() == bytes(4 << 20)
    assert not (tmp_path.parent / "etc").exists()
