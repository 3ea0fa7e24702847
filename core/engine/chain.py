"""A restore point and the images it depends on, opened together and checked against their pins.

An incremental or differential image names its ancestors in ``chain`` (parent first) with the BLAKE3
digest of each one's manifest. Opening checks every pin: a missing ancestor is an incomplete restore
point, a replaced or altered one an integrity failure naming the image it needs. Extent references
(``image_ref``) index this list: 0 is the point itself, k its k-th entry.
"""

from __future__ import annotations

from typing import Callable, Iterator

from ..errors import IncompleteImage, IntegrityError
from ..format import manifest as mf
from ..format.c_image import ExtentEntry
from ..format.manifest import Manifest
from .imagereader import ImageReader
from ..platform.limits import ensure_open_files
from .overlay import layers, resolved
from .repo import Repository

# One chunk to read and where its bytes go: ((image ref, chunk), [(disk offset, length, chunk offset)]).
ChunkGroup = tuple[tuple[int, int], list[tuple[int, int, int]]]


def load_chain(repo: Repository, image_id: str, password: Callable[[], bytes | None]) -> list[Manifest]:
    """The point's manifest followed by its ancestors', every pin checked."""
    point = repo.load(image_id, password)
    out = [point]
    try:
        _load_ancestors(repo, image_id, password, out)
    except BaseException:
        for m in out:
            m.close()
        raise
    return out


def _load_ancestors(repo: Repository, image_id: str, password: Callable[[], bytes | None],
                    out: list[Manifest]) -> None:
    pins = out[0].meta.chain
    # Each image keeps a manifest and its volumes open while the chain is in use (`Chain`).
    ensure_open_files(len(pins) + 1, repo.path, f"the chain of image {image_id} ({len(pins) + 1} images)")
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
        out.append(m)
        if m.meta.chain != pins[i + 1:]:
            raise IntegrityError(detail=f"image {pin.id} does not continue the chain of image {image_id}")


class Chain:
    """Readers over a point and its ancestors."""

    def __init__(self, repo: Repository, image_id: str, password: Callable[[], bytes | None]) -> None:
        self.manifests = load_chain(repo, image_id, password)
        self.point = self.manifests[0]
        self.readers: list[ImageReader] = []
        try:
            ensure_open_files(sum(len(m.meta.volumes) for m in self.manifests), repo.path,
                              f"the chain of image {image_id} ({len(self.manifests)} images)")
            self._check_v1_maps()
            for m in self.manifests:
                self.readers.append(ImageReader(repo, m))
        except BaseException:
            self.close()
            raise

    def read_chunk(self, ref: int, number: int, stored: bytes | None = None) -> bytes:
        return self.readers[ref].read_chunk(number, stored)

    def read_stored(self, ref: int, number: int) -> bytes:
        return self.readers[ref].read_stored(number)

    def _check_v1_maps(self) -> None:
        """Version-1 maps are whole in memory and their rows name other images' chunks: every bound
        is checked once, here (version-2 blocks are checked as each is read, see `format.tables`)."""
        for i in range(layers(self.manifests)):
            m = self.manifests[i]
            if m.is_delta:
                continue
            last_end = -1
            for rows in m.extents.blocks():
                for disk_off, length, chunk, chunk_off, ref, _ in ExtentEntry.codec.iter_unpack(rows):
                    if i + ref >= len(self.manifests):
                        raise IntegrityError(detail=f"image {m.image_id}: extent at disk byte {disk_off} refers "
                                                    f"to image {ref} of a chain of {len(self.manifests) - i}")
                    raw_len = self.manifests[i + ref].raw_length(chunk)
                    if raw_len is None:
                        raise IntegrityError(detail=f"image {m.image_id}: extent at disk byte {disk_off} names "
                                                    f"missing chunk {chunk} of image "
                                                    f"{self.manifests[i + ref].image_id}")
                    if length == 0 or chunk_off + length > raw_len or disk_off < last_end \
                            or disk_off + length > m.meta.disk_size:
                        raise IntegrityError(detail=f"image {m.image_id}: extent at disk byte {disk_off} "
                                                    "is malformed or overlaps another")
                    last_end = disk_off + length

    def check_tables(self) -> None:
        """Read and check every table block of every image of the chain (verify does this; a restore
        checks each block as it reads it)."""
        for m in self.manifests:
            if m.is_delta:
                for table in (m.extents, m.units):
                    for _ in table.blocks():
                        pass

    def chunk_groups(self, ref: int) -> Iterator[ChunkGroup]:
        """The chunks of image ``ref`` the point's disk uses, in chunk order (the order they lie on the
        medium), each with the disk places of its bytes."""
        key: tuple[int, int] | None = None
        places: list[tuple[int, int, int]] = []
        for disk_off, length, r, chunk, chunk_off in resolved(self.manifests, upto=ref):
            if r != ref:
                continue
            if key != (ref, chunk):
                if key is not None:
                    yield key, places
                key, places = (ref, chunk), []
            places.append((disk_off, length, chunk_off))
        if key is not None:
            yield key, places

    def data_bytes(self) -> int:
        """Bytes of the point's disk that the images hold (what a restore writes besides zeros)."""
        return sum(e[1] for e in resolved(self.manifests))

    def close(self) -> None:
        for r in self.readers:
            r.close()
        self.readers = []
        for m in self.manifests:
            m.close()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
