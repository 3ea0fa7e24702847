"""Random access to the disk as an image recorded it: ``DiskView.read(offset, length)``.

Used by the FUSE mount, by single-file extraction and as the source of a merge: each read resolves
its range through the chain's tables (`overlay.resolved`, one cached block per image at a time), the
chunks it names are read through the image chain (so every byte handed out is authenticated and
digest-checked) and kept in a small LRU cache. Bytes that no extent covers read as zeros (free space,
zero extents, areas outside partitions that were blank).

For the mount's server: `cached` answers a read from decoded chunks alone (or says it cannot), so an
event loop serves cache hits without a thread hop; `prefetch` decodes the chunk a sequential reader
will reach next in the background, so its decode overlaps the reader's copying instead of stalling it;
`on_decode` and `pieces` let it hand the kernel the rest of each chunk it decoded. All of them see only
chunks `_chunk` verified, like `read`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

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
        self._prefetching = False
        # Called as on_decode(ref, number, data, near) after a chunk was decoded and verified for a read
        # at disk byte ``near`` (in the decoding thread; exceptions are ignored).
        self.on_decode: Optional[Callable[[int, int, bytes, int], None]] = None

    def _chunk(self, ref: int, number: int, near: int) -> bytes:
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
            hook = self.on_decode
            if hook is not None:
                try:
                    hook(ref, number, data, near)
                except Exception:  # noqa: BLE001 - the hook is an optimisation; the read stands
                    pass
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
            data = self._chunk(ref, chunk, lo)
            out[lo - offset:lo - offset + n] = data[chunk_off:chunk_off + n]
        return bytes(out)

    def cached(self, offset: int, length: int) -> bytes | None:
        """`read` from chunks already decoded (so verified), without waiting; None when a chunk it needs
        is not in the cache (the caller then uses `read`)."""
        end = min(offset + length, self.size)
        if offset < 0 or length < 0 or offset >= end:
            return None
        pieces = list(resolved(self.chain.manifests, offset, end))
        found = []
        with self._lock:
            for lo, n, ref, chunk, chunk_off in pieces:
                data = self._cache.get((ref, chunk))
                if data is None:
                    return None
                self._cache.move_to_end((ref, chunk))
                found.append((lo, n, data, chunk_off))
        out = bytearray(end - offset)
        for lo, n, data, chunk_off in found:
            out[lo - offset:lo - offset + n] = data[chunk_off:chunk_off + n]
        return bytes(out)

    def prefetch(self, offset: int) -> None:
        """Start decoding the chunk that holds disk byte ``offset`` in a background thread, unless it is
        cached, being decoded, or another prefetch is running: one at a time keeps memory bounded (one
        chunk in flight) and adds at most one decode to the readers' own."""
        if not 0 <= offset < self.size:
            return
        first = next(resolved(self.chain.manifests, offset, offset + 1), None)
        if first is None:
            return  # zeros: nothing to decode
        key = (first[2], first[3])
        with self._lock:
            if self._prefetching or key in self._cache or key in self._loading:
                return
            self._prefetching = True
        threading.Thread(target=self._prefetch, args=(*key, offset), name="prefetch", daemon=True).start()

    def _prefetch(self, ref: int, number: int, offset: int) -> None:
        try:
            self._chunk(ref, number, offset)
        except Exception:  # noqa: BLE001 - a damaged chunk is reported when a reader asks for it
            pass
        finally:
            with self._lock:
                self._prefetching = False

    def pieces(self, ref: int, number: int, start: int, end: int) -> list[tuple[int, int, int]]:
        """Where chunk (ref, number) shows in disk bytes [start, end): (disk offset, length, offset in
        the chunk) of each piece, in disk order. A piece another image of the chain overrides is not one."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return []
        return [(lo, n, chunk_off) for lo, n, r, c, chunk_off in resolved(self.chain.manifests, start, end)
                if r == ref and c == number]


@contextmanager
def open_view(folder: str, image_id: str | None, password: Callable[[], bytes | None]) -> Iterator[DiskView]:
    """Open an image of a backup folder (latest by default) as a `DiskView`; closes its volumes after."""
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    with Chain(repo, image_id, password) as chain:
        yield DiskView(chain)
