"""Per-image keys: the data key, its wrapping in a key slot, and the AEAD for chunks and manifests.

Every image gets a fresh random 256-bit data key (so two backups of identical data never share a
key, and nonces can be deterministic counters). From it we derive, with BLAKE3's key derivation
mode, the AES-256-GCM key and the key of the keyed chunk digest, so that digests of plaintext stored
in the index do not let anyone without the password confirm guesses about the content. How a data key
is stored in an image (the key slot) is the image format's business: `core.format.keyslot`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError
from .kdf import KdfParams, derive_kek

_CTX_AEAD = "rescue image v1 2026-11 aes-256-gcm data key"
_CTX_DIGEST = "rescue image v1 2026-11 blake3 chunk digest key"


def nonce(kind: int, counter: int) -> bytes:
    """96-bit GCM nonce: 4-byte record kind || 8-byte counter (unique per kind under one data key)."""
    return struct.pack("<IQ", kind, counter)


@dataclass
class ImageKeys:
    """Keys of one image. ``aead`` is None for unencrypted images (digests are then unkeyed)."""

    data_key: bytes | None

    def __post_init__(self) -> None:
        if self.data_key is None:
            self.aead: AESGCM | None = None
            self.digest_key: bytes | None = None
        else:
            self.aead = AESGCM(blake3.blake3(self.data_key, derive_key_context=_CTX_AEAD).digest())
            self.digest_key = blake3.blake3(self.data_key, derive_key_context=_CTX_DIGEST).digest()

    @classmethod
    def new(cls, encrypted: bool) -> ImageKeys:
        return cls(os.urandom(32) if encrypted else None)

    def digest(self, data: bytes | memoryview) -> bytes:
        """Strong digest of a chunk's plaintext (keyed BLAKE3 when encrypted). Releases the GIL."""
        if self.digest_key is None:
            return blake3.blake3(data, max_threads=1).digest()
        return blake3.blake3(data, key=self.digest_key, max_threads=1).digest()

    def seal(self, kind: int, counter: int, plaintext: bytes, aad: bytes) -> bytes:
        if self.aead is None:
            return plaintext
        return self.aead.encrypt(nonce(kind, counter), plaintext, aad)

    def open(self, kind: int, counter: int, ciphertext: bytes | memoryview, aad: bytes,
             where: str) -> bytes | memoryview:
        if self.aead is None:
            return ciphertext
        try:
            return self.aead.decrypt(nonce(kind, counter), ciphertext, aad)
        except InvalidTag:
            raise IntegrityError(detail=f"{where}: authentication failed (data altered or not of this image)") \
                from None


@dataclass
class KeyWrap:
    """A key-encryption key derived from the password, ready to wrap a data key.

    Deriving costs Argon2id's memory and time; a backup derives it before its pipeline starts, so that
    the KDF's memory is never added to the pipeline's at the peak.
    """

    params: KdfParams
    salt: bytes
    kek: bytes = field(repr=False)

    @classmethod
    def derive(cls, password: bytes, params: KdfParams) -> KeyWrap:
        salt = os.urandom(32)
        return cls(params, salt, derive_kek(password, salt, params))
