"""`merge`: fold a restore point and its chain into one new full image (a "synthetic full").

The new image is written and committed completely (same write ordering as a backup) before anything
old is removed; then the images of the old chain that no remaining image depends on are deleted,
children first. A kill at any moment leaves every committed restore point restorable: before the
commit nothing old is touched, after it the new full already holds the point's state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import __version__
from ..crypto.kdf import DEFAULT_KDF, KdfParams
from ..crypto.keys import ImageKeys, KeyWrap
from ..format import manifest as mf
from ..format.c_image import ENC_AES256GCM, ENC_NONE, HASH_UNIT, ChunkEntry, ExtentEntry, UnitEntry
from ..format.volume import VolumeWriter
from ..io.atomic import write_durable
from ..progress import Event, Progress
from .backup import _Packer
from .chain import Chain
from .chunker import Chunker
from .lifecycle import closure, remove_images
from .pipeline import Ordered
from .plan import Region
from .repo import Repository, new_image_id
from .view import DiskView


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
            pw = password() if point.encrypted else None
            new_id = new_image_id()
            keys = ImageKeys.new(point.encrypted)
            uuid = mf.new_uuid()
            writer = VolumeWriter(repo.path, new_id, uuid, keys, ENC_AES256GCM if point.encrypted else ENC_NONE,
                                  split)
            view = DiskView(chain)
            regions = [Region(off, n, "used") for off, n, *_ in point.iter_extents()]
            total = sum(r.length for r in regions)
            done = [0]

            def on_read(n: int) -> None:
                done[0] += n
                progress.report(Event("merge", done[0], total))

            chunker = Chunker(view, regions, 512, on_read)
            chunks = bytearray()
            try:
                for chunk, digest, comp, payload in Ordered(_Packer(level, keys, True), chunker):
                    progress.check()
                    vol, off, stored = writer.add_chunk(chunk.number, comp, chunk.size, payload)
                    chunks += ChunkEntry.build(volume_number=vol, record_offset=off, stored_length=stored,
                                               raw_length=chunk.size, digest=digest)
                volumes = writer.finish()
                meta = dict(point.meta)
                stored_bytes = sum(v.length for v in volumes)
                meta.update({
                    "id": new_id, "kind": "full", "parent": None, "parent_digest": None, "chain": [],
                    "merged_from": point_id, "tool": f"rescue {__version__}",
                    "volumes": [{"number": v.number, "name": v.name, "length": v.length, "records": v.records,
                                 "trailer_digest": v.trailer_digest.hex()} for v in volumes],
                    "chunk_count": len(chunks) // ChunkEntry.size,
                    "extent_count": len(chunker.extents) // ExtentEntry.size,
                    "unit_count": len(chunker.units) // UnitEntry.size, "hash_unit": HASH_UNIT,
                    "stats": {**point.meta["stats"], "stored_bytes": stored_bytes, "reused_bytes": 0},
                })
                summary = {**point.summary, "id": new_id, "kind": "full", "parent": None, "bytes": stored_bytes}
                m = mf.Manifest(new_id, uuid, point.encrypted, summary, meta, bytes(chunks), bytes(chunker.extents),
                                bytes(chunker.units), keys=keys)
                progress.check()
                # Commit point of the merge: the new full is durable before anything old is removed.
                wrap = KeyWrap.derive(pw, kdf) if pw is not None else None
                write_durable(repo.path, f"{new_id}.manifest", mf.encode(m, wrap))
            except BaseException:
                writer.abort()
                raise
        images = repo.list_images()
        by_id = {i.id: i for i in images}
        others = [i.id for i in images if i.complete and i.id not in folded and i.id != new_id]
        needed = closure(by_id, others)
        doomed = {i for i in folded if i not in needed}
        removed = remove_images(repo, images, doomed)
    return MergeResult(new_id, point_id, folded, removed, [i for i in folded if i in needed], stored_bytes,
                       time.monotonic() - started)
