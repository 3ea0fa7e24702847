"""Password -> key-encryption key, with bounded, authenticated Argon2id parameters.

The parameters live in the key slot of each manifest and are bound into the key-wrap AEAD, so
changing them makes the unwrap fail. They are also clamped *before* deriving: an attacker who edits
them cannot make us allocate gigabytes (a rescue PC may have 1 GiB of RAM) nor accept a trivial cost
that would make a stolen backup cheap to brute-force.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ..errors import FormatError

# Floors: below these a stolen image is too cheap to attack (OWASP's lowest Argon2id setting is
# 19 MiB, t=2). Ceilings: 1 GiB of memory still fits small rescue machines; more iterations or lanes
# only burn time. Values outside the range are refused before any derivation.
MIN_MEMORY_KIB = 19 * 1024
MAX_MEMORY_KIB = 1024 * 1024
MIN_ITERATIONS = 2
MAX_ITERATIONS = 16
MIN_LANES = 1
MAX_LANES = 16


@dataclass(frozen=True)
class KdfParams:
    memory_kib: int = 64 * 1024  # borg's default Argon2id cost: m=64 MiB, t=3, p=4
    iterations: int = 3
    lanes: int = 4

    def check(self) -> None:
        if not (MIN_MEMORY_KIB <= self.memory_kib <= MAX_MEMORY_KIB
                and MIN_ITERATIONS <= self.iterations <= MAX_ITERATIONS
                and MIN_LANES <= self.lanes <= MAX_LANES):
            raise FormatError(what="key slot",
                              detail=f"KDF parameters out of bounds (memory {self.memory_kib} KiB, "
                                     f"iterations {self.iterations}, lanes {self.lanes})")


DEFAULT_KDF = KdfParams()


def derive_kek(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id(password, salt) -> 32-byte key-encryption key. Checks the parameters first."""
    params.check()
    if len(salt) != 32:
        raise FormatError(what="key slot", detail=f"salt must be 32 bytes, not {len(salt)}")
    kdf = Argon2id(salt=salt, length=32, iterations=params.iterations, lanes=params.lanes,
                   memory_cost=params.memory_kib)
    return kdf.derive(password)
