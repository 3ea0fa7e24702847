"""Verify an image: every volume's structure and every chunk's content, without writing anything.

Structural damage (missing, truncated, foreign or reordered volume; damaged manifest) stops at once.
Chunk damage is collected so the user learns every bad chunk in one run; the first one is named in
the error, the rest are in ``VerifyResult.bad``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Error, IntegrityError
from ..progress import Event, Progress
from .imagereader import ImageReader
from .pipeline import Ordered
from .repo import Repository


@dataclass
class VerifyResult:
    image_id: str
    chunks: int
    data_bytes: int
    seconds: float
    bad: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "ok": not self.bad, "chunks": self.chunks, "data_bytes": self.data_bytes,
                "seconds": round(self.seconds, 3), "errors": self.bad}


def verify(folder: str, image_id: str | None, password: Callable[[], bytes | None],
           progress: Progress) -> VerifyResult:
    started = time.monotonic()
    repo = Repository(folder)
    image_id = repo.resolve(image_id)
    manifest = repo.load(image_id, password)
    bad: list[str] = []
    data = 0
    with ImageReader(repo, manifest) as reader:
        reader.extents_by_chunk()  # bounds and overlap checks of the extent map
        total = manifest.chunk_count

        def check(n: int) -> tuple[int, int, str]:
            try:
                return n, len(reader.read_chunk(n)), ""
            except IntegrityError as e:
                return n, 0, e.message

        for n, length, err in Ordered(check, range(total)):
            progress.check()
            if err:
                bad.append(err)
            data += length
            if n % 16 == 0:
                progress.report(Event("verify", n + 1, total))
        progress.report(Event("verify", total, total))
    result = VerifyResult(image_id, total, data, time.monotonic() - started, bad)
    if bad:
        more = f" (and {len(bad) - 1} more bad chunks)" if len(bad) > 1 else ""
        err: Error = IntegrityError(detail=f"image {image_id}: {bad[0]}{more}")
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result
