"""Random access to the disk as an image recorded it: ``DiskView.read(offset, length)``.

Used by the FUSE mount, by single-file extraction and as the source of a merge: each read resolves
its range through the chain's tables (`overlay.resolved`, one cached block per image at a time), the
chunks it names are read through the image chain (so every byte handed out is authenticated and
digest-checked) and kept in a small LRU cache. Bytes that no extent covers read as zeros (free space,
zero extents, areas outside partitions that were blank).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import IntegrityError
from .chain import Chain
from .overlay import resolved
from .repo import Repository

# 16 decoded chunks (64 MiB) keep sequential reads and small random reads cheap while bounding memory.
CACHE_CHUNKS = 16


class DiskView:
    """A read-only, verified view of the disk an image holds. Thread-safe."""

    def __init__(self, chain: Chain, cache_chunks: int = CACHE_CHUNKS) -> None:
        self.chain = chain
        self.size = chain.point.meta.disk_size
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_max = max(1, cache_chunks)
        self._lock = threading.Lock()
        self._loading: dict[tuple[int, int], threading.Event] = {}

    def _chunk(self, ref: int, number: int) -> bytes:
        key = (ref, number)
        while True:
            with self._lock:
                data = self._cache.get(key)
                if data is not None:
                    self._cache.move_to_end(key)
                    return data
                pending = self._loading.get(key)
                if pending is None:
                    # This thread decodes the chunk; others asking for it meanwhile wait for it
                    # instead of decoding the same 4 MiB again.
                    self._loading[key] = threading.Event()
                    break
            pending.wait()
        try:
            data = self.chain.read_chunk(ref, number)  # verified; raises IntegrityError on damage
            with self._lock:
                self._cache[key] = data
                while len(self._cache) > self._cache_max:
                    self._cache.popitem(last=False)
            return data
        finally:
            with self._lock:
                self._loading.pop(key).set()

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the disk, clipped to its size."""
        if offset < 0 or length < 0:
            raise IntegrityError(detail=f"bad read {offset}+{length}")
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        for lo, n, ref, chunk, chunk_off in resolved(self.chain.manifests, offset, end):
            data = self._chunk(ref, chunk)
            out[lo - offset:lo - offset + n] = data[chunk_off:chunk_off + n]
        return bytes(out)


@contextmanager
def open_view(folder: str, image_id: str | None, password: Callable[[], bytes | None]) -> Iterator[DiskView]:
    """Open an image of a backup folder (latest by default) as a `DiskView`; closes its volumes after."""
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    with Chain(repo, image_id, password) as chain:
        yield DiskView(chain)
