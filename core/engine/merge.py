"""`merge`: fold a restore point and its chain into one new full image (a "synthetic full").

The new image is written and committed completely (same write ordering as a backup) before anything
old is removed; then the images of the old chain that no remaining image depends on are deleted,
children first. A kill at any moment leaves every committed restore point restorable: before the
commit nothing old is touched, after it the new full already holds the point's state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .. import __version__
from ..crypto.kdf import DEFAULT_KDF, KdfParams
from ..format.image_meta import FORMAT
from ..progress import Progress
from .chain import Chain
from .chunker import Chunker
from .imagewriter import ImageWriter
from .lifecycle import closure, remove_images
from .overlay import resolved
from .plan import Region
from .repo import Repository, new_image_id
from .view import DiskView

# Decoded chunks the merge's view keeps: it reads the chain in disk order, so a few suffice. The view's
# default (16 chunks, 64 MiB, for a mount's random reads) put a merge of 1 GiB of data at ~190 MiB peak;
# 4 keep it near 140 MiB for ~10 % more CPU (an incremental's blocks interleave with its parent's
# chunks, so fewer would decode chunks twice). Measured by tests/scale.
MERGE_CACHE_CHUNKS = 4


@dataclass
class MergeResult:
    image_id: str
    merged_from: str
    folded: list[str]
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    stored_bytes: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.image_id, "merged_from": self.merged_from, "folded": self.folded,
                "removed": self.removed, "kept_because_needed": self.kept, "stored_bytes": self.stored_bytes,
                "seconds": round(self.seconds, 3)}


def merge(folder: str, image_id: str | None, password: Callable[[], bytes | None], progress: Progress,
          level: int = 1, split: int | None = None, kdf: KdfParams = DEFAULT_KDF) -> MergeResult:
    started = time.monotonic()
    repo = Repository(folder)
    with repo.lock():
        point_id = repo.resolve(image_id)
        with Chain(repo, point_id, password) as chain:
            point = chain.point
            folded = [m.image_id for m in chain.manifests]
            new_id = new_image_id()
            # The point's disk state, streamed twice (its size, then its data): never held whole.
            total = sum(e[1] for e in resolved(chain.manifests))
            regions = (Region(off, n, "used") for off, n, *_ in resolved(chain.manifests))
            with ImageWriter(repo, new_id, progress, "merge", total, split=split, level=level, kdf=kdf,
                             password=password() if point.encrypted else None) as writer:
                chunker = Chunker(DiskView(chain, MERGE_CACHE_CHUNKS), regions,
                                  point.meta.source.logical_sector_size, writer.tables, writer.on_read)
                writer.write(chunker)
                writer.finish()
                meta = replace(point.meta, format=FORMAT, id=new_id, kind="full", parent=None, parent_digest=None,
                               chain=(),
                               merged_from=point_id, tool=f"rescue {__version__}",
                               # the new full stores every byte itself: none is reused from a parent
                               stats=replace(point.meta.stats, data_bytes=writer.data_bytes,
                                             stored_bytes=writer.stored_bytes, reused_bytes=0))
                # Commit point of the merge: the new full is durable before anything old is removed.
                writer.commit(meta)
        images = repo.list_images()
        by_id = {i.id: i for i in images}
        others = [i.id for i in images if i.complete and i.id not in folded and i.id != new_id]
        needed = closure(by_id, others)
        doomed = {i for i in folded if i not in needed}
        removed = remove_images(repo, images, doomed)
    return MergeResult(new_id, point_id, folded, removed, [i for i in folded if i in needed],
                       writer.stored_bytes, time.monotonic() - started)
