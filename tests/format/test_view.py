"""DiskView: random reads of an image equal the source disk's bytes (free space reads as zeros)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, backup
from core.engine.chain import Chain
from core.engine.repo import Repository
from core.engine.view import DiskView
from core.errors import IntegrityError
from core.progress import Progress
from tests.images import small_disk


def test_random_reads_match_source(tmp_path: Path) -> None:
    src = small_disk(tmp_path / "s.img")
    backup(str(src), str(tmp_path / "bk"), BackupOptions(password=b"pw"), Progress())
    repo = Repository(str(tmp_path / "bk"))
    data = src.read_bytes()  # small_disk leaves free space zeroed, so the view must equal it
    rnd = random.Random(5)
    with Chain(repo, repo.resolve(None), lambda: b"pw") as r:
        view = DiskView(r, cache_chunks=2)
        assert view.size == len(data)
        for _ in range(300):
            off = rnd.randrange(len(data))
            n = rnd.choice([1, 511, 4096, 65536, 5 << 20])
            assert view.read(off, n) == data[off:off + n], (off, n)
        assert view.read(len(data) - 10, 100) == data[-10:]


def test_corrupt_chunk_raises_on_the_read_that_hits_it(tmp_path: Path) -> None:
    src = small_disk(tmp_path / "s.img")
    backup(str(src), str(tmp_path / "bk"), BackupOptions(), Progress())
    repo = Repository(str(tmp_path / "bk"))
    vol = next((tmp_path / "bk").glob("*.v0001"))
    raw = bytearray(vol.read_bytes())
    raw[300] ^= 0xFF  # inside chunk 0's payload
    vol.write_bytes(bytes(raw))
    with Chain(repo, repo.resolve(None), lambda: None) as r:
        view = DiskView(r)
        with pytest.raises(IntegrityError):
            view.read(0, 512)  # the MBR lives in chunk 0
