"""Volume files: header, chunk records, trailer (FORMAT.md "Volume file").

`VolumeWriter` appends records, splits at the size cap, and commits each finished volume durably
(``.partial`` -> fsync -> rename -> directory fsync). `VolumeReader` validates a volume's header and
trailer before anything else is read, and reads single records by offset, checking each against
what the manifest's chunk table says must be there.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import blake3

from ..crypto.keys import ImageKeys
from ..errors import IncompleteImage, IntegrityError, NewerFormat
from ..io.atomic import fsync_dir, os_error
from ..io.writeback import Writeback
from ..platform import files
from .c_image import (CHUNK_SIZE, FORMAT_VERSION, KNOWN_MANDATORY_FEATURES, NONCE_CHUNK, RECORD_CHUNK,
                      RECORD_MAGIC, TRAILER_MAGIC, VOLUME_MAGIC, RecordHeader, VolumeHeader, VolumeTrailer)

# A volume must hold at least its header, one largest record (a chunk that did not compress is stored
# raw, plus the GCM tag) and the trailer; 8 MiB leaves room to spare.
MIN_SPLIT = 8 << 20
GCM_TAG = 16


def volume_name(image_id: str, number: int) -> str:
    return f"{image_id}.v{number + 1:04d}"


def chunk_aad(image_uuid: bytes, header_digest: bytes, volume_number: int, record_offset: int,
              record_header: bytes) -> bytes:
    """What each chunk's AEAD binds: whose image, which volume, where in it, and its header."""
    return (image_uuid + header_digest + volume_number.to_bytes(4, "little")
            + record_offset.to_bytes(8, "little") + record_header)


def build_volume_header(image_uuid: bytes, number: int, encryption: int, compression: int) -> bytes:
    body = VolumeHeader.build(magic=VOLUME_MAGIC, version=FORMAT_VERSION, header_size=VolumeHeader.size,
                              image_uuid=image_uuid, volume_number=number, encryption=encryption,
                              compression=compression, chunk_size=CHUNK_SIZE)[:96]
    return body + blake3.blake3(body).digest()


def trailer_digest(trailer_prefix: bytes, header_digest: bytes) -> bytes:
    return blake3.blake3(trailer_prefix + header_digest).digest()


@dataclass
class VolumeInfo:
    """What the manifest records of each volume."""

    number: int
    name: str
    length: int
    records: int
    trailer_digest: bytes


class VolumeWriter:
    """Writes the volumes of one image in order; not thread-safe (one writer thread)."""

    def __init__(self, folder: str, image_id: str, image_uuid: bytes, keys: ImageKeys, encryption: int,
                 split_size: int | None) -> None:
        self.folder = folder
        self.image_id = image_id
        self.image_uuid = image_uuid
        self.keys = keys
        self.encryption = encryption
        self.split_size = split_size
        self.volumes: list[VolumeInfo] = []
        self._fd = -1
        self._number = -1
        self._offset = 0
        self._records = 0
        self._header_digest = b""
        self._prev_trailer = bytes(32)
        self.partial_paths: list[str] = []

    def _path(self, number: int) -> str:
        return os.path.join(self.folder, volume_name(self.image_id, number))

    def _open_next(self) -> None:
        self._number += 1
        path = self._path(self._number) + ".partial"
        header = build_volume_header(self.image_uuid, self._number, self.encryption, 1)
        self._header_digest = header[96:]
        try:
            self._fd = files.open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | files.CLOEXEC, 0o644)
        except OSError as e:
            raise os_error(e, self.folder, f"creating {os.path.basename(path)}") from e
        self.partial_paths.append(path)
        self._writeback = Writeback(self._fd)
        self._offset = 0
        self._records = 0
        self._write(header)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:
            raise os_error(e, self.folder, f"writing {volume_name(self.image_id, self._number)}") from e
        self._writeback.wrote(self._offset, len(data))
        self._offset += len(data)

    def _close_current(self, final: bool) -> None:
        prefix = VolumeTrailer.build(magic=TRAILER_MAGIC, volume_number=self._number, record_count=self._records,
                                     volume_length=self._offset + VolumeTrailer.size, final=int(final),
                                     prev_trailer_digest=self._prev_trailer)[:64]
        digest = trailer_digest(prefix, self._header_digest)
        self._write(prefix + digest)
        name = volume_name(self.image_id, self._number)
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            files.rename(self._path(self._number) + ".partial", self._path(self._number))
            # Renamed but not yet durable nor in self.volumes: abort() must still find it to remove it.
            self.partial_paths[-1] = self._path(self._number)
            fsync_dir(self.folder)
            self.partial_paths.pop()
        except OSError as e:
            raise os_error(e, self.folder, f"committing {name}") from e
        self.volumes.append(VolumeInfo(self._number, name, self._offset, self._records, digest))
        self._prev_trailer = digest

    def add_chunk(self, chunk_number: int, compression: int, raw_length: int, payload: bytes) -> tuple[int, int, int]:
        """Append one chunk record; returns (volume number, record offset, stored length)."""
        stored_length = len(payload) + (GCM_TAG if self.keys.aead is not None else 0)
        record_size = RecordHeader.size + stored_length
        if self._fd < 0:
            self._open_next()
        elif self.split_size is not None and self._offset + record_size + VolumeTrailer.size > self.split_size:
            self._close_current(final=False)
            self._open_next()
        head = RecordHeader.build(magic=RECORD_MAGIC, type=RECORD_CHUNK, compression=compression,
                                  chunk_number=chunk_number, stored_length=stored_length,
                                  raw_length=raw_length)[:36]
        head += zlib.crc32(head).to_bytes(4, "little")
        record_offset = self._offset
        aad = chunk_aad(self.image_uuid, self._header_digest, self._number, record_offset, head)
        sealed = self.keys.seal(NONCE_CHUNK, chunk_number, payload, aad)
        self._write(head)
        self._write(sealed)
        self._records += 1
        return self._number, record_offset, stored_length

    def finish(self) -> list[VolumeInfo]:
        """Close the last volume (an image with no chunk still gets one, empty, volume)."""
        if self._fd < 0:
            self._open_next()
        self._close_current(final=True)
        return self.volumes

    def abort(self) -> None:
        """Best effort after a failure: close and remove every file of this (uncommitted) image.

        Without a manifest these volumes can never be restored, so they are only wasted space; after a
        kill -9 they stay behind and `list` shows the image as incomplete."""
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        for p in self.partial_paths + [os.path.join(self.folder, v.name) for v in self.volumes]:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.partial_paths.clear()


class VolumeReader:
    """One volume of an image, validated on open against what the manifest recorded."""

    def __init__(self, folder: str, image_id: str, info: VolumeInfo, image_uuid: bytes, encryption: int,
                 prev_trailer_digest: bytes) -> None:
        self.name = info.name
        self.path = os.path.join(folder, info.name)
        self.info = info
        self.image_uuid = image_uuid
        try:
            self.fd = files.open_fd(self.path, os.O_RDONLY | files.CLOEXEC)
        except FileNotFoundError:
            raise IncompleteImage(image=image_id, detail=f"volume {info.name} is missing") from None
        except OSError as e:
            raise IntegrityError(detail=f"{info.name}: cannot open: {e.strerror}") from None
        try:
            self._validate(encryption, prev_trailer_digest)
        except BaseException:
            os.close(self.fd)
            raise

    def _pread(self, offset: int, length: int) -> bytes:
        # One pread is the common case: its bytes are returned as they are (a record is 4 MiB; each
        # extra copy cost ~0.5 ms of a chunk's ~8 ms decode, measured by bench/browse.py).
        try:
            first = files.pread(self.fd, length, offset)
        except OSError as e:
            raise IntegrityError(detail=f"{self.name}: read error at byte {offset}: {e.strerror}") from None
        if len(first) == length or not first:
            return first
        out = bytearray(first)
        while len(out) < length:
            try:
                chunk = files.pread(self.fd, length - len(out), offset + len(out))
            except OSError as e:
                raise IntegrityError(detail=f"{self.name}: read error at byte {offset + len(out)}: {e.strerror}") \
                    from None
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _validate(self, encryption: int, prev_trailer_digest: bytes) -> None:
        size = os.fstat(self.fd).st_size
        if size != self.info.length:
            raise IntegrityError(detail=f"{self.name}: length is {size} bytes, the manifest says {self.info.length}"
                                        " (truncated or extended)")
        if size < VolumeHeader.size + VolumeTrailer.size:
            raise IntegrityError(detail=f"{self.name}: too short ({size} bytes) to be a volume")
        raw = self._pread(0, VolumeHeader.size)
        h = VolumeHeader.parse(raw, what=self.name)
        if h["magic"] != VOLUME_MAGIC:
            raise IntegrityError(detail=f"{self.name}: not a volume file (bad magic at byte 0)")
        # The digest first (as for the manifest): a flipped version or feature bit is damage.
        if blake3.blake3(raw[:96]).digest() != h["header_digest"]:
            raise IntegrityError(detail=f"{self.name}: volume header damaged (digest mismatch)")
        if h["version"] > FORMAT_VERSION or h["mandatory_features"] & ~KNOWN_MANDATORY_FEATURES:
            raise NewerFormat(what=self.name, detail=f"format version {h['version']}, "
                                                     f"features 0x{h['mandatory_features']:x}")
        if h["image_uuid"] != self.image_uuid:
            raise IntegrityError(detail=f"{self.name}: volume belongs to another image")
        if h["volume_number"] != self.info.number:
            raise IntegrityError(detail=f"{self.name}: holds volume {h['volume_number'] + 1}, "
                                        f"expected volume {self.info.number + 1} (volumes swapped or renamed)")
        if h["encryption"] != encryption or h["header_size"] != VolumeHeader.size:
            raise IntegrityError(detail=f"{self.name}: header disagrees with the manifest")
        self.header_digest = h["header_digest"]
        traw = self._pread(size - VolumeTrailer.size, VolumeTrailer.size)
        t = VolumeTrailer.parse(traw, what=self.name)
        if t["magic"] != TRAILER_MAGIC:
            raise IntegrityError(detail=f"{self.name}: trailer missing at byte {size - VolumeTrailer.size} (truncated?)")
        if trailer_digest(traw[:64], self.header_digest) != t["trailer_digest"] \
                or t["trailer_digest"] != self.info.trailer_digest:
            raise IntegrityError(detail=f"{self.name}: trailer damaged or not the one the manifest recorded")
        if t["volume_length"] != size or t["volume_number"] != self.info.number \
                or t["record_count"] != self.info.records:
            raise IntegrityError(detail=f"{self.name}: trailer disagrees with the file (length/number/records)")
        if t["prev_trailer_digest"] != prev_trailer_digest:
            raise IntegrityError(detail=f"{self.name}: does not follow the previous volume (chain digest mismatch)")
        self.data_end = size - VolumeTrailer.size

    def read_record(self, record_offset: int, chunk_number: int, stored_length: int, raw_length: int,
                    keys: ImageKeys) -> tuple[int, bytes | memoryview]:
        """Read, check and decrypt one chunk record; returns (compression, payload)."""
        raw = self.record_bytes(record_offset, chunk_number, stored_length)
        return self.open_record(raw, record_offset, chunk_number, stored_length, raw_length, keys)

    def record_bytes(self, record_offset: int, chunk_number: int, stored_length: int) -> bytes:
        """The stored bytes of one chunk record (header and sealed payload), within the data area: the
        reading half of `read_record`, for a caller that reads records in order in one thread and
        opens them in others (a network folder's client serves reads in sequence far better)."""
        where = f"{self.name} chunk {chunk_number} at byte {record_offset}"
        if record_offset < VolumeHeader.size or record_offset + RecordHeader.size + stored_length > self.data_end:
            raise IntegrityError(detail=f"{where}: record lies outside the volume's data area")
        raw = self._pread(record_offset, RecordHeader.size + stored_length)
        if len(raw) != RecordHeader.size + stored_length:
            raise IntegrityError(detail=f"{where}: short read")
        return raw

    def open_record(self, raw: bytes, record_offset: int, chunk_number: int, stored_length: int, raw_length: int,
                    keys: ImageKeys) -> tuple[int, bytes | memoryview]:
        """Check and decrypt the record `record_bytes` read; returns (compression, payload)."""
        where = f"{self.name} chunk {chunk_number} at byte {record_offset}"
        if len(raw) != RecordHeader.size + stored_length:
            raise IntegrityError(detail=f"{where}: short read")
        head = raw[:RecordHeader.size]
        r = RecordHeader.parse(head, what=where)
        if r["magic"] != RECORD_MAGIC or zlib.crc32(head[:36]) != r["header_crc32"]:
            raise IntegrityError(detail=f"{where}: record header damaged")
        if (r["type"] != RECORD_CHUNK or r["chunk_number"] != chunk_number or r["stored_length"] != stored_length
                or r["raw_length"] != raw_length or r["compression"] not in (0, 1)):
            raise IntegrityError(detail=f"{where}: record header disagrees with the chunk table")
        aad = chunk_aad(self.image_uuid, self.header_digest, self.info.number, record_offset, head)
        # (a view: the payload is not copied out of the record before it is opened)
        payload = keys.open(NONCE_CHUNK, chunk_number, memoryview(raw)[RecordHeader.size:], aad, where)
        return r["compression"], payload

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
