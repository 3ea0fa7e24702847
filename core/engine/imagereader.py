"""Reading an image's chunks back, each one checked before it is handed out.

Opening validates every volume (header, trailer, hash chain, lengths) against the manifest, so a
missing, truncated, swapped or foreign volume is found before any data is used. `read_chunk` then
reads one record, authenticates it (encrypted images), decompresses it with a bounded output, and
compares its digest with the chunk table: the caller only ever sees verified bytes.
"""

from __future__ import annotations

import threading
import zstandard

from ..errors import IntegrityError
from ..format.c_image import CHUNK_SIZE, COMP_STORED, COMP_ZSTD, RecordHeader, VolumeHeader
from ..format.image_meta import ImageMeta
from ..format.manifest import Manifest
from ..format.volume import VolumeReader
from .repo import Repository


class ImageReader:
    def __init__(self, repo: Repository, manifest: Manifest) -> None:
        self.repo = repo
        self.manifest = manifest
        self.keys = manifest.keys
        if self.keys is None:
            raise ValueError("manifest was not opened")
        self.volumes: list[VolumeReader] = []
        self._local = threading.local()
        prev = bytes(32)
        enc = 1 if manifest.encrypted else 0
        try:
            infos = manifest.volumes()
            for i, info in enumerate(infos):
                if info.number != i:
                    raise IntegrityError(detail=f"image {manifest.image_id}: manifest lists volumes out of order")
                v = VolumeReader(repo.path, manifest.image_id, info, manifest.image_uuid, enc, prev)
                self.volumes.append(v)
                prev = info.trailer_digest
            self._check_tiling()
        except BaseException:
            self.close()
            raise

    def _check_tiling(self) -> None:
        """Records must tile each volume's data area exactly: no gap, overlap or stray bytes."""
        pos = [VolumeHeader.size] * len(self.volumes)
        counts = [0] * len(self.volumes)
        for n in range(self.manifest.chunk_count):
            c = self.manifest.chunk(n)
            v = c["volume_number"]
            if not 0 <= v < len(self.volumes):
                raise IntegrityError(detail=f"image {self.manifest.image_id}: chunk {n} names volume {v + 1}, "
                                            f"which the image does not have")
            if c["record_offset"] != pos[v] or not 0 < c["raw_length"] <= CHUNK_SIZE:
                raise IntegrityError(detail=f"{self.volumes[v].name}: chunk table entry {n} is out of place")
            pos[v] += RecordHeader.size + c["stored_length"]
            counts[v] += 1
        for v, vol in enumerate(self.volumes):
            if pos[v] != vol.data_end or counts[v] != vol.info.records:
                raise IntegrityError(detail=f"{vol.name}: holds {vol.data_end - pos[v]} bytes not described by "
                                            "the chunk table")

    def read_stored(self, number: int) -> bytes:
        """Chunk ``number``'s record as stored, unchecked: the I/O half of `read_chunk`. Thread-safe."""
        c = self.manifest.chunk(number)
        stored: bytes = self.volumes[c["volume_number"]].record_bytes(c["record_offset"], number, c["stored_length"])
        return stored

    def read_chunk(self, number: int, stored: bytes | None = None) -> bytes:
        """The verified plaintext of chunk ``number`` (from ``stored``, what `read_stored` read, when
        given). Thread-safe."""
        c = self.manifest.chunk(number)
        vol = self.volumes[c["volume_number"]]
        assert self.keys is not None  # set in __init__
        if stored is None:
            stored = vol.record_bytes(c["record_offset"], number, c["stored_length"])
        compression, payload = vol.open_record(stored, c["record_offset"], number, c["stored_length"],
                                               c["raw_length"], self.keys)
        where = f"{vol.name} chunk {number} at byte {c['record_offset']}"
        if compression == COMP_ZSTD:
            d = getattr(self._local, "d", None)
            if d is None:
                d = self._local.d = zstandard.ZstdDecompressor()
            try:
                # Bounded: a hostile frame cannot make us allocate more than the chunk's raw size.
                raw = d.decompress(payload, max_output_size=c["raw_length"])
            except zstandard.ZstdError as e:
                raise IntegrityError(detail=f"{where}: does not decompress ({e})") from None
        elif compression == COMP_STORED:
            raw = bytes(payload)
        else:
            raise IntegrityError(detail=f"{where}: unknown compression {compression}")
        if len(raw) != c["raw_length"] or self.keys.digest(raw) != c["digest"]:
            raise IntegrityError(detail=f"{where}: content does not match its digest")
        return raw

    def meta(self) -> ImageMeta:
        return self.manifest.meta

    def close(self) -> None:
        for v in self.volumes:
            v.close()
        self.volumes = []

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
