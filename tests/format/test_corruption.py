"""R-01..R-06, R-21, R-22, R-61: damaged, truncated, missing, swapped or tampered images are detected.

Every byte flip uses ``b ^= r`` with r in 1..255 so the byte always changes; random cases log their
seed (pytest prints it on failure through the parametrize id).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import blake3
import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.repo import Repository
from core.engine.restore import plan_restore
from core.engine.verify import verify
from core.errors import Error, ImageNotFound, IncompleteImage, IntegrityError, NewerFormat, WrongPassword
from core.format.c_image import FORMAT_VERSION
from core.format.c_image import ManifestHeader
from core.format.manifest import tail_digest
from core.progress import Progress
from tests.images import run_rescue

PW = b"test password"


def tiny_source(path: Path) -> Path:
    """A 1 MiB 'disk' without partition table: imaged raw (text, random and zero blocks)."""
    rnd = random.Random(7)
    data = bytearray(1 << 20)
    data[0:200_000] = (b"The quick brown fox. " * 10_000)[:200_000]
    data[300_000:400_000] = rnd.randbytes(100_000)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("img")
    src = tiny_source(base / "tiny.img")
    out = {}
    for name, pw in (("plain", None), ("enc", PW)):
        folder = base / name
        backup(str(src), str(folder), BackupOptions(password=pw), Progress())
        out[name] = folder
    out["src"] = src
    return out


def copy(folder: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(folder, dst)
    return dst


def files(folder: Path) -> tuple[Path, Path]:
    vol = next(folder.glob("*.v0001"))
    man = next(folder.glob("*.manifest"))
    return vol, man


def flip(path: Path, offset: int, r: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ r]))


def run_verify(folder: Path, pw: bytes | None) -> Error | None:
    try:
        verify(str(folder), None, lambda: pw, Progress())
    except Error as e:
        return e
    return None


def test_clean_images_verify(images: dict[str, Path]) -> None:
    assert run_verify(images["plain"], None) is None
    assert run_verify(images["enc"], PW) is None


def test_every_byte_of_plain_volume_and_manifest(images: dict[str, Path], tmp_path: Path) -> None:
    """R-01 exhaustive on structure bytes, sampled in payloads: every flip is caught, naming the file."""
    folder = copy(images["plain"], tmp_path)
    vol, man = files(folder)
    rnd = random.Random(1)
    vsize, msize = vol.stat().st_size, man.stat().st_size
    offsets = [(vol, o) for o in list(range(0, 168)) + list(range(vsize - 96, vsize))]
    offsets += [(vol, rnd.randrange(168, vsize - 96)) for _ in range(150)]
    offsets += [(man, o) for o in range(msize)] if msize < 4000 else [(man, rnd.randrange(msize)) for _ in range(800)]
    for path, off in offsets:
        r = rnd.randrange(1, 256)
        flip(path, off, r)
        err = run_verify(folder, None)
        flip(path, off, r)
        assert isinstance(err, IntegrityError), f"flip of {path.name} byte {off} went undetected ({err!r})"
        # a flipped version or feature bit is damage (exit 20), not "needs a newer version" (22)
        assert not isinstance(err, NewerFormat), f"flip of {path.name} byte {off}: {err.message}"
        assert path.name.split(".")[0] in err.message or path.suffix.lstrip(".") in err.message \
            or "image" in err.message, err.message


@pytest.mark.parametrize("seed", range(3))
def test_random_flips_encrypted(images: dict[str, Path], tmp_path: Path, seed: int) -> None:
    folder = copy(images["enc"], tmp_path)
    vol, man = files(folder)
    rnd = random.Random(seed)
    for path in (vol, man):
        for _ in range(6):
            off = rnd.randrange(path.stat().st_size)
            r = rnd.randrange(1, 256)
            flip(path, off, r)
            err = run_verify(folder, PW)
            flip(path, off, r)
            assert isinstance(err, (IntegrityError, WrongPassword)), f"{path.name}@{off}: {err!r}"
            # A flip in the key slot that survives the tail check cannot happen (the tail covers it),
            # so a wrong-password report here would be a lie about the cause.
            assert not isinstance(err, WrongPassword), f"{path.name}@{off}: damage reported as wrong password"


@pytest.mark.parametrize("length", [0, 1, 127, 128, 129, 500, -97, -96, -1])
def test_truncated_volume(images: dict[str, Path], tmp_path: Path, length: int) -> None:
    """R-02: truncation anywhere is found, naming the volume and both lengths."""
    folder = copy(images["plain"], tmp_path)
    vol, _ = files(folder)
    size = vol.stat().st_size
    os.truncate(vol, length if length >= 0 else size + length)
    err = run_verify(folder, None)
    assert isinstance(err, IntegrityError)
    assert vol.name in err.message


def test_appended_garbage(images: dict[str, Path], tmp_path: Path) -> None:
    folder = copy(images["plain"], tmp_path)
    vol, _ = files(folder)
    with open(vol, "ab") as f:
        f.write(b"garbage")
    err = run_verify(folder, None)
    assert isinstance(err, IntegrityError) and vol.name in err.message


def test_missing_volume_is_incomplete(images: dict[str, Path], tmp_path: Path) -> None:
    folder = copy(images["plain"], tmp_path)
    vol, _ = files(folder)
    vol.unlink()
    err = run_verify(folder, None)
    assert isinstance(err, IncompleteImage) and vol.name in err.message


def test_split_volumes_swapped_by_renaming(tmp_path: Path, images: dict[str, Path]) -> None:
    """R-03: the file names lie about the order; the headers and the hash chain tell."""
    src = tmp_path / "big.img"
    rnd = random.Random(3)
    src.write_bytes(rnd.randbytes(20 << 20))
    folder = tmp_path / "bk"
    res = backup(str(src), str(folder), BackupOptions(split=8 << 20), Progress())
    assert len(res.volumes) >= 3
    a, b = folder / res.volumes[0], folder / res.volumes[1]
    a.rename(tmp_path / "x")
    b.rename(a)
    (tmp_path / "x").rename(b)
    err = run_verify(folder, None)
    assert isinstance(err, IntegrityError) and "volume" in err.message


def test_volume_from_another_image_of_same_data_and_password(images: dict[str, Path], tmp_path: Path) -> None:
    """R-04: a volume swapped in from another image made of identical data with the same password."""
    folder = copy(images["enc"], tmp_path)
    other = tmp_path / "other"
    backup(str(images["src"]), str(other), BackupOptions(password=PW), Progress())
    vol, _ = files(folder)
    shutil.copy(next(other.glob("*.v0001")), vol)
    err = run_verify(folder, PW)
    assert isinstance(err, IntegrityError)


def test_record_type_tag_changed_with_valid_crc(images: dict[str, Path], tmp_path: Path) -> None:
    """R-05: a record header edited consistently (CRC fixed) still fails authentication."""
    import zlib
    folder = copy(images["enc"], tmp_path)
    vol, _ = files(folder)
    data = bytearray(vol.read_bytes())
    head = data[128:168]
    head[5] ^= 1  # compression flag
    head[36:40] = zlib.crc32(bytes(head[:36])).to_bytes(4, "little")
    data[128:168] = head
    vol.write_bytes(bytes(data))
    err = run_verify(folder, PW)
    assert isinstance(err, IntegrityError)


def test_manifest_removed_means_incomplete_and_never_restored(images: dict[str, Path], tmp_path: Path) -> None:
    """R-06: an image whose manifest is gone is incomplete and never restored; the target is untouched."""
    folder = copy(images["plain"], tmp_path)
    _, man = files(folder)
    man.unlink()
    [entry] = Repository(str(folder)).list_images()
    assert not entry.complete
    target = tmp_path / "t.img"
    target.write_bytes(b"\x55" * (2 << 20))
    with pytest.raises(ImageNotFound):
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    with pytest.raises(IncompleteImage):
        plan_restore(str(folder), entry.id, str(target), lambda: None, Progress())
    assert target.read_bytes() == b"\x55" * (2 << 20)


def test_truncated_volume_refused_before_first_write(images: dict[str, Path], tmp_path: Path) -> None:
    folder = copy(images["plain"], tmp_path)
    vol, _ = files(folder)
    os.truncate(vol, vol.stat().st_size - 10)
    target = tmp_path / "t.img"
    target.write_bytes(b"\x55" * (2 << 20))
    with pytest.raises(IntegrityError):
        plan_restore(str(folder), None, str(target), lambda: None, Progress())
    assert target.read_bytes() == b"\x55" * (2 << 20)


def _rewrite_header(man: Path, offset: int, value: bytes) -> None:
    """Edit a manifest header field and fix header digest and tail, as an attacker or newer tool would."""
    data = bytearray(man.read_bytes())
    data[offset:offset + len(value)] = value
    data[96:128] = blake3.blake3(bytes(data[:96])).digest()
    data[-32:] = tail_digest(bytes(data))
    man.write_bytes(bytes(data))


def test_unknown_mandatory_feature_refused(images: dict[str, Path], tmp_path: Path) -> None:
    """R-61: mandatory bit -> 'needs a newer version'; optional bit -> accepted."""
    folder = copy(images["plain"], tmp_path)
    _, man = files(folder)
    _rewrite_header(man, 16, (1 << 5).to_bytes(4, "little"))
    assert run_verify(folder, None) is None
    _rewrite_header(man, 12, (1 << 3).to_bytes(4, "little"))
    err = run_verify(folder, None)
    assert isinstance(err, NewerFormat)


def test_newer_version_is_22_only_with_an_intact_header(images: dict[str, Path], tmp_path: Path) -> None:
    """A higher version with a valid header digest needs a newer program (22); the same bytes with the
    digest not matching are damage (20), in the manifest and in a volume."""
    folder = copy(images["plain"], tmp_path)
    vol, man = files(folder)
    for path in (vol, man):
        good = path.read_bytes()
        bad = bytearray(good)
        bad[8:10] = (FORMAT_VERSION + 1).to_bytes(2, "little")
        path.write_bytes(bytes(bad))
        err = run_verify(folder, None)
        assert isinstance(err, IntegrityError) and not isinstance(err, NewerFormat), err
        assert "digest mismatch" in err.message and path.name in err.message
        path.write_bytes(good)
    _rewrite_header(man, 8, (FORMAT_VERSION + 1).to_bytes(2, "little"))
    err = run_verify(folder, None)
    assert isinstance(err, NewerFormat) and err.exit_code == 22 and f"format version {FORMAT_VERSION + 1}" in err.message
    listed = run_rescue("list", str(folder))
    assert "NEWER FORMAT" in listed.stdout and "DAMAGED" not in listed.stdout, listed.stdout


def test_downgrade_to_unencrypted_refused(images: dict[str, Path], tmp_path: Path) -> None:
    """R-22: rewriting the header to claim 'unencrypted' does not yield data."""
    folder = copy(images["enc"], tmp_path)
    _, man = files(folder)
    _rewrite_header(man, 36, b"\x00\x00")
    err = run_verify(folder, PW)
    assert isinstance(err, IntegrityError)


def test_kdf_parameters_out_of_bounds_refused_before_deriving(images: dict[str, Path], tmp_path: Path) -> None:
    """R-21: a huge memory cost is refused without being tried (no 4 GiB allocation)."""
    folder = copy(images["enc"], tmp_path)
    _, man = files(folder)
    data = bytearray(man.read_bytes())
    data[128:132] = (4 << 20).to_bytes(4, "little")  # 4 GiB in KiB
    data[-32:] = tail_digest(bytes(data))
    man.write_bytes(bytes(data))
    err = run_verify(folder, PW)
    assert isinstance(err, IntegrityError) and "out of bounds" in err.message


@pytest.mark.parametrize("name", ["plain", "enc"])
def test_damaged_table_block_is_named_and_nothing_is_written(images: dict[str, Path], tmp_path: Path,
                                                             name: str) -> None:
    """A flipped byte in a version-2 manifest's table area (which the tail does not cover) is found by
    the block's own digest: verify names the block; a damaged extent-map block stops a restore before
    it writes, a damaged unit-table block stops an incremental before it writes anything."""
    folder = copy(images[name], tmp_path)
    _, man = files(folder)
    pw = PW if name == "enc" else None
    repo = Repository(str(folder))
    m = repo.load(repo.resolve(None), lambda: pw)
    places = {"extent": m.extents.entries[0], "unit": m.units.entries[0]}  # type: ignore[attr-defined]
    m.close()
    for table, (_, _, offset, stored, *_) in places.items():
        for at in (offset, offset + stored - 1):
            flip(man, at, 0x10)
            err = run_verify(folder, pw)
            assert isinstance(err, IntegrityError) and f"{table} " in err.message and "digest" in err.message, err
            if table == "extent":
                target = tmp_path / "t.img"
                target.write_bytes(b"\x55" * (2 << 20))
                with pytest.raises(IntegrityError):
                    plan_restore(str(folder), None, str(target), lambda: pw, Progress())
                assert target.read_bytes() == b"\x55" * (2 << 20)
            else:
                before = sorted(p.name for p in folder.iterdir())
                with pytest.raises(IntegrityError):
                    backup(str(images["src"]), str(folder), BackupOptions(mode="incremental", password=pw), Progress())
                assert sorted(p.name for p in folder.iterdir()) == before
            flip(man, at, 0x10)
    assert run_verify(folder, pw) is None
