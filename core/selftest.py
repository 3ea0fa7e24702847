"""Known-answer tests of the primitives the image format relies on, run at every start (borg's idea).

A rescue medium is a frozen binary built elsewhere; a broken wheel or a mis-packaged library must stop
the program before it writes an image nobody can read. Takes a few milliseconds.
"""

from __future__ import annotations

import zlib

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from .errors import SelftestError


def _check(name: str, got: bytes | int, want: bytes | int) -> None:
    if got != want:
        raise SelftestError(detail=f"{name} gave a wrong answer")


def run() -> None:
    """Raise `SelftestError` if any primitive gives a wrong answer."""
    # BLAKE3 of the empty input (BLAKE3 reference test vectors).
    _check("BLAKE3", blake3.blake3(b"").digest(),
           bytes.fromhex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"))
    # AES-256-GCM, NIST GCM spec test case 13: zero key and IV, empty plaintext -> tag only.
    _check("AES-256-GCM", AESGCM(bytes(32)).encrypt(bytes(12), b"", None),
           bytes.fromhex("530f8afbc74536b9a963b4f1c4cb738b"))
    # Argon2id, RFC 9106 section 5.3 test vector.
    kdf = Argon2id(salt=b"\x02" * 16, length=32, iterations=3, lanes=4, memory_cost=32, ad=b"\x04" * 12,
                   secret=b"\x03" * 8)
    _check("Argon2id", kdf.derive(b"\x01" * 32),
           bytes.fromhex("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"))
    # CRC-32 (zlib) check value.
    _check("CRC-32", zlib.crc32(b"123456789"), 0xCBF43926)
    # zstd: a round trip, and a decompression bounded by max_output_size.
    data = b"rescue selftest " * 1000
    frame = zstandard.ZstdCompressor(level=3).compress(data)
    _check("zstd", zstandard.ZstdDecompressor().decompress(frame, max_output_size=len(data)), data)
