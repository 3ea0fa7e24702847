"""R-24: the start-up self-test passes on a good build and stops a broken one."""

from __future__ import annotations

import pytest

from core import selftest


def test_selftest_passes() -> None:
    selftest.run()


def test_broken_primitive_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self, key: bytes) -> None:
            pass

        def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
            return bytes(16)
    monkeypatch.setattr(selftest, "AESGCM", Broken)
    with pytest.raises(selftest.SelftestError) as e:
        selftest.run()
    assert e.value.exit_code == 23 and "AES-256-GCM" in e.value.message
