"""Verify an image: every volume's structure and every chunk's content, without writing anything.

Structural damage (missing, truncated, foreign or reordered volume; damaged manifest) stops at once.
Chunk damage is collected so the user learns every bad chunk in one run; the first one is named in
the error, the rest are in ``VerifyResult.bad``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import IntegrityError
from ..progress import Event, Progress
from .chain import Chain
from .pipeline import Ordered, in_order
from .repo import Repository


@dataclass
class VerifyResult:
    image_id: str
    chunks: int
    data_bytes: int
    seconds: float
    bad: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # the point and the images it depends on

    def as_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "ok": not self.bad, "chunks": self.chunks, "data_bytes": self.data_bytes,
                "seconds": round(self.seconds, 3), "errors": self.bad, "images": self.images}


def verify(folder: str, image_id: str | None, password: Callable[[], bytes | None],
           progress: Progress) -> VerifyResult:
    started = time.monotonic()
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    bad: list[str] = []
    data = 0
    with Chain(repo, image_id, password) as chain:
        chain.check_tables()  # every block of every image's extent map and unit table, bounds and order
        # Every chunk of every image the point depends on, not only the ones it references: a chain
        # image is only as good as all of it.
        # (a generator: a list of every chunk of a large chain would grow with the disk)
        keys = ((ref, n) for ref, m in enumerate(chain.manifests) for n in range(m.chunk_count))
        total = sum(m.chunk_count for m in chain.manifests)

        def said(e: IntegrityError) -> str:
            # the error raised below says "Integrity check failed" once, not once per chunk
            return str(e.kwargs.get("detail", e.message)) if type(e) is IntegrityError else e.message

        def fetch(key: tuple[int, int]) -> tuple[tuple[int, int], bytes | None, str]:
            try:
                return key, chain.read_stored(*key), ""
            except IntegrityError as e:
                return key, None, said(e)

        def check(item: tuple[tuple[int, int], bytes | None, str]) -> tuple[int, str]:
            key, stored, err = item
            if stored is None:
                return 0, err
            try:
                return len(chain.read_chunk(*key, stored)), ""
            except IntegrityError as e:
                return 0, said(e)

        # records read by one thread in the order they lie in the volumes (`in_order`), checked by the pool
        for i, (length, err) in enumerate(Ordered(check, in_order(fetch, keys))):
            progress.check()
            if err:
                bad.append(err)
            data += length
            if i % 16 == 0:
                progress.report(Event("verify", i + 1, total, unit="blocks"))
        progress.report(Event("verify", total, total, unit="blocks"))
        images = [m.image_id for m in chain.manifests]
    result = VerifyResult(image_id, total, data, time.monotonic() - started, bad, images)
    if bad:
        more = f" (and {len(bad) - 1} more bad chunks)" if len(bad) > 1 else ""
        failure = IntegrityError(detail=f"image {image_id}: {bad[0]}{more}")
        failure.result = result  # type: ignore[attr-defined]  # read by the CLI for --json
        raise failure
    return result
