"""The key slot of an encrypted image's manifest: the data key wrapped under the password (FORMAT.md "Key slot").

The slot carries the Argon2id parameters and salt, a random nonce and the AES-256-GCM-wrapped data key;
its associated data binds the manifest header to it. Parameters are checked before any derivation
(`KdfParams.check`), so a tampered slot can neither exhaust memory nor lower the cost of guessing.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto.kdf import KdfParams, derive_kek
from ..crypto.keys import ImageKeys, KeyWrap
from ..errors import FormatError, IntegrityError, WrongPassword
from .c_image import KeySlot


def make_keyslot(keys: ImageKeys, wrap: KeyWrap, aad: bytes) -> bytes:
    """Wrap the data key under the KEK; ``aad`` binds the manifest header to the slot."""
    if keys.data_key is None:
        raise ValueError("unencrypted image has no key slot")
    wrap_nonce = os.urandom(12)
    p = wrap.params
    prefix = KeySlot.build(memory_kib=p.memory_kib, iterations=p.iterations, lanes=p.lanes, salt=wrap.salt,
                           nonce=wrap_nonce)[:60]
    wrapped = AESGCM(wrap.kek).encrypt(wrap_nonce, keys.data_key, aad + prefix)
    return KeySlot.build(memory_kib=p.memory_kib, iterations=p.iterations, lanes=p.lanes, salt=wrap.salt,
                         nonce=wrap_nonce, wrapped_key=wrapped)


def open_keyslot(slot: bytes, password: bytes, aad: bytes, image: str) -> ImageKeys:
    """Unwrap the data key; a failed tag means a wrong password (or a tampered slot)."""
    fields = KeySlot.parse(slot, what=f"key slot of {image}")
    params = KdfParams(fields["memory_kib"], fields["iterations"], fields["lanes"])
    try:
        params.check()
    except FormatError as e:
        raise IntegrityError(detail=f"{image}: {e.message}") from None
    kek = derive_kek(password, fields["salt"], params)
    try:
        data_key = AESGCM(kek).decrypt(fields["nonce"], fields["wrapped_key"], aad + slot[:60])
    except InvalidTag:
        raise WrongPassword(image=image) from None
    return ImageKeys(data_key)
