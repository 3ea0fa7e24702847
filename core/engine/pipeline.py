"""An ordered, bounded two-core pipeline.

Work items are handed to a small thread pool (zstd, AES-GCM, BLAKE3 and pread all release the GIL,
so two threads use two cores) and their results come back in submission order. At most
``depth`` items are in flight, which bounds memory to ``depth`` x item size whatever the disk size.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS = max(1, min(4, os.cpu_count() or 2))
# Threads for work that waits on the disk (direct writes and read-backs block for the device's
# latency): two more than the cores, so that the device always has requests while the CPUs work.
IO_WORKERS = WORKERS + 2


class Ordered(Generic[T, R]):
    """``for result in Ordered(fn, items)``: fn(item) runs in the pool, results arrive in order."""

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], depth: int = WORKERS * 3,
                 workers: int = WORKERS) -> None:
        self.fn = fn
        self.items = items
        self.depth = max(1, depth)
        self.workers = max(1, workers)

    def __iter__(self) -> Iterator[R]:
        pending: deque[Future[R]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rescue") as pool:
            try:
                for item in self.items:
                    pending.append(pool.submit(self.fn, item))
                    if len(pending) >= self.depth:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for f in pending:
                    f.cancel()


# Records read ahead of the workers by `in_order` (each up to a 4 MiB chunk plus its header): enough to
# keep every worker fed while the reader waits on the medium, little next to the workers' own buffers.
READ_AHEAD = IO_WORKERS


def in_order(fn: Callable[[T], R], items: Iterable[T], depth: int = READ_AHEAD) -> Iterator[R]:
    """``fn`` over ``items`` in one thread, strictly in their order, up to ``depth`` ahead of the consumer.

    For reading an image's records: the reads reach the folder in the order the records lie in the
    volumes, whatever the number of workers that then open them. A network folder's client serves that
    far better than concurrent reads out of sequence (rclone's S3 mount starts a new ranged GET for
    each read out of sequence: a restore with four workers reading took 4x as long as one reading in
    order, bench/remote.py); a local disk sees the same sequential stream."""
    return iter(Ordered(fn, items, depth=depth, workers=1))
