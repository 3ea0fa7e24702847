"""Random access to the disk as an image recorded it: ``DiskView.read(offset, length)``.

Used by the FUSE mount and by single-file extraction: the extent map is searched by bisection, the
chunks it names are read through the image chain (so every byte handed out is authenticated and
digest-checked) and kept in a small LRU cache. Bytes that no extent covers read as zeros (free space,
zero extents, areas outside partitions that were blank).
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import IntegrityError
from .chain import Chain
from .repo import Repository

# 16 decoded chunks (64 MiB) keep sequential reads and small random reads cheap while bounding memory.
CACHE_CHUNKS = 16


class DiskView:
    """A read-only, verified view of the disk an image holds. Thread-safe."""

    def __init__(self, chain: Chain, cache_chunks: int = CACHE_CHUNKS) -> None:
        self.chain = chain
        self.size = chain.point.meta.disk_size
        self._starts = array("Q")
        self._lengths = array("Q")
        self._refs = array("H")
        self._chunks = array("Q")
        self._chunk_offs = array("Q")
        chain.extents_by_chunk()  # bounds, overlap and order checks of the extent map
        for disk_off, length, chunk, chunk_off, ref, _ in chain.point.iter_extents():
            self._starts.append(disk_off)
            self._lengths.append(length)
            self._refs.append(ref)
            self._chunks.append(chunk)
            self._chunk_offs.append(chunk_off)
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
        i = max(0, bisect.bisect_right(self._starts, offset) - 1)
        while i < len(self._starts) and self._starts[i] < end:
            s, n = self._starts[i], self._lengths[i]
            lo, hi = max(s, offset), min(s + n, end)
            if lo < hi:
                data = self._chunk(self._refs[i], self._chunks[i])
                c = self._chunk_offs[i] + lo - s
                out[lo - offset:hi - offset] = data[c:c + hi - lo]
            i += 1
        return bytes(out)


@contextmanager
def open_view(folder: str, image_id: str | None, password: Callable[[], bytes | None]) -> Iterator[DiskView]:
    """Open an image of a backup folder (latest by default) as a `DiskView`; closes its volumes after."""
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    with Chain(repo, image_id, password) as chain:
        yield DiskView(chain)
