"""Helpers shared by the regf and BCD tests: dumps by our reader and by hivex, fixture copies."""

from __future__ import annotations

import json
import lzma
import struct
import subprocess
from pathlib import Path
from typing import Any

from core.regf.c_regf import base_block_checksum
from core.regf.hive import Hive
from tests.conftest import SHARED_FIXTURES, shared_fixture

HIVEX_DUMP = Path(__file__).with_name("hivex_dump.py")
BCD_NAMES = ["pybcd_BCD2", "pybcd_BCDTest", "pybcd_BCDgen", "windeploy-linux_BCD", "windeploy-linux_BCD-efi"]


def bcd_fixture(name: str) -> Path:
    return shared_fixture(f"bcd/{name}")


def our_dump(hive: Hive) -> list[Any]:
    """Same shape as hivex_dump.py: [[path, [[name, type, hex], ...]], ...] depth first, list order."""
    out = []
    for key in hive.walk():
        out.append([key.path, [[v.name, v.type, v.data.hex()] for v in key.values()]])
    return out


def hivex_dump(path: Path | str) -> list[Any]:
    """The independent reading: Debian's python3-hivex, only importable by /usr/bin/python3."""
    res = subprocess.run(["/usr/bin/python3", str(HIVEX_DUMP), str(path)], capture_output=True, text=True,
                         timeout=120, check=False)
    if res.returncode != 0:
        raise AssertionError(f"hivex could not read {path}: {res.stderr.strip()}")
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def hivexsh(path: Path | str, *commands: str) -> str:
    script = "\n".join(commands) + "\n"
    res = subprocess.run(["hivexsh", str(path)], input=script, capture_output=True, text=True, timeout=60,
                         check=False)
    if res.returncode != 0:
        raise AssertionError(f"hivexsh failed on {path}: {res.stderr.strip()}")
    return res.stdout


def system_hive(tmp: Path) -> Path:
    """regipy_SYSTEM_2 decompressed into ``tmp`` (still dirty: 205/204)."""
    src = shared_fixture("hives/regipy_SYSTEM_2.xz")
    out = tmp / "SYSTEM_2"
    out.write_bytes(lzma.decompress(src.read_bytes()))
    return out


def make_clean(path: Path) -> None:
    """Test-only: mark a dirty hive clean by setting seq2 = seq1 and fixing the checksum.

    This drops whatever the (absent) transaction logs held; it is only done to get a writable copy of
    the real SYSTEM sample for write tests.
    """
    data = bytearray(path.read_bytes())
    seq1 = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<I", data, 8, seq1)
    struct.pack_into("<I", data, 508, base_block_checksum(data))
    path.write_bytes(bytes(data))


__all__ = ["BCD_NAMES", "SHARED_FIXTURES", "bcd_fixture", "hivex_dump", "hivexsh", "make_clean", "our_dump",
           "system_hive"]
