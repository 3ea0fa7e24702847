"""A restore point and the images it depends on, opened together and checked against their pins.

An incremental or differential image names its ancestors in ``chain`` (parent first) with the BLAKE3
digest of each one's manifest. Opening checks every pin: a missing ancestor is an incomplete restore
point, a replaced or altered one an integrity failure naming the image it needs. Extent references
(``image_ref``) index this list: 0 is the point itself, k its k-th entry.
"""

from __future__ import annotations

from typing import Callable

from ..errors import IncompleteImage, IntegrityError
from ..format import manifest as mf
from ..format.manifest import Manifest
from .imagereader import ImageReader
from .repo import Repository

ExtentMap = dict[tuple[int, int], list[tuple[int, int, int]]]


def load_chain(repo: Repository, image_id: str, password: Callable[[], bytes | None]) -> list[Manifest]:
    """The point's manifest followed by its ancestors', every pin checked."""
    point = repo.load(image_id, password)
    out = [point]
    pins = point.meta.chain
    for i, pin in enumerate(pins):
        try:
            f = mf.read_file(repo.manifest_path(pin.id), pin.id)
        except IncompleteImage:
            raise IncompleteImage(image=image_id, detail=f"it needs image {pin.id} (manifest digest "
                                                         f"{pin.digest[:16]}...), which is missing") from None
        if f.digest.hex() != pin.digest:
            raise IntegrityError(detail=f"image {image_id} needs image {pin.id} with manifest digest "
                                        f"{pin.digest[:16]}..., but that image was replaced or altered")
        m = mf.open_manifest(f, password)
        if m.meta.chain != pins[i + 1:]:
            raise IntegrityError(detail=f"image {pin.id} does not continue the chain of image {image_id}")
        out.append(m)
    return out


class Chain:
    """Readers over a point and its ancestors."""

    def __init__(self, repo: Repository, image_id: str, password: Callable[[], bytes | None]) -> None:
        self.manifests = load_chain(repo, image_id, password)
        self.point = self.manifests[0]
        self.readers: list[ImageReader] = []
        try:
            for m in self.manifests:
                self.readers.append(ImageReader(repo, m))
        except BaseException:
            self.close()
            raise

    def read_chunk(self, ref: int, number: int) -> bytes:
        return self.readers[ref].read_chunk(number)

    def extents_by_chunk(self) -> ExtentMap:
        """(image ref, chunk) -> [(disk offset, length, chunk offset)], every bound checked."""
        out: ExtentMap = {}
        last_end = -1
        point = self.point
        for disk_off, length, chunk, chunk_off, ref, _ in point.iter_extents():
            if ref >= len(self.manifests):
                raise IntegrityError(detail=f"image {point.image_id}: extent at disk byte {disk_off} refers to "
                                            f"image {ref} of a chain of {len(self.manifests)}")
            owner = self.manifests[ref]
            if chunk >= owner.chunk_count:
                raise IntegrityError(detail=f"image {point.image_id}: extent at disk byte {disk_off} names "
                                            f"missing chunk {chunk} of image {owner.image_id}")
            raw_len = owner.chunk(chunk)["raw_length"]
            if length == 0 or chunk_off + length > raw_len or disk_off < last_end:
                raise IntegrityError(detail=f"image {point.image_id}: extent at disk byte {disk_off} "
                                            "is malformed or overlaps another")
            last_end = disk_off + length
            out.setdefault((ref, chunk), []).append((disk_off, length, chunk_off))
        return out

    def read_order(self, emap: ExtentMap) -> list[tuple[int, int]]:
        """Chunks in the order they lie on the backup medium (image, volume, offset): one pass, each once."""
        def key(k: tuple[int, int]) -> tuple[int, int, int]:
            c = self.manifests[k[0]].chunk(k[1])
            return k[0], c["volume_number"], c["record_offset"]
        return sorted(emap, key=key)

    def close(self) -> None:
        for r in self.readers:
            r.close()
        self.readers = []

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
