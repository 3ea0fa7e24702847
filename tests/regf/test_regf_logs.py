"""Dirty hives replayed from their transaction logs (core/regf/logs.py), proven on real Windows samples.

yarp's OldDirtyHive and NewDirtyHive1 come with the hive Windows itself recovered from the same logs
(Windows 7 and Windows 10): our replay must give the same keys and values, and the same cells where
Windows' later writes did not touch them. regipy_SYSTEM_B is checked value by value against regipy's
own log recovery. The damaged samples, and damaged copies of the good ones, are each refused with the
reason, or (trailing bytes after an old log) handled as Windows does.
"""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from core.errors import DirtyHiveError
from core.regf.c_regf import LOG_ENTRY, MARVIN32_LOG_SEED, NK, base_block_checksum
from core.regf.check import check_hive
from core.regf.hive import Hive
from core.regf.logs import LogFile, Recovery, replay
from core.regf.marvin import marvin32
from tests.conftest import shared_fixture
from tests.regf.regf_helpers import our_dump

DIRTY = "hives/dirty"


def _logs(folder: Path, base: str, **override: bytes | None) -> list[LogFile]:
    out = []
    for ext in ("LOG1", "LOG2", "LOG"):
        p = folder / f"{base}.{ext}"
        data = override[ext] if ext in override else (p.read_bytes() if p.exists() else None)
        out.append(LogFile(f"{base}.{ext}", data))
    return out


def _sample(rel: str, base: str, **override: bytes | None) -> tuple[bytes, list[LogFile]]:
    folder = shared_fixture(f"{DIRTY}/{rel}")
    return (folder / base).read_bytes(), _logs(folder, base, **override)


def _refused(primary: bytes, logs: list[LogFile], reason: str) -> None:
    with pytest.raises(DirtyHiveError) as e:
        replay(primary, logs, "hive")
    assert reason in e.value.message, e.value.message
    assert e.value.exit_code == 6


def _clean(r: Recovery) -> Hive:
    hive = Hive.from_bytes(r.data, name="recovered")
    h = hive.header
    assert h.seq1 == h.seq2 == r.sequence and h.checksum_ok and not hive.dirty
    assert check_hive(hive) == []
    return hive


def _cells(hive: Hive) -> dict[int, bytes]:
    return {off: hive.cell(off) for off in hive.allocated}


def test_marvin32_gives_the_hashes_windows_wrote() -> None:
    _, logs = _sample("yarp_NewDirtyHive1", "NewDirtyHive")
    seed = MARVIN32_LOG_SEED
    log = logs[1].data
    assert log is not None
    offs = _entry_offsets(log)
    assert len(offs) == 3
    for off in offs:
        size = struct.unpack_from("<I", log, off + 4)[0]
        hash1, hash2 = struct.unpack_from("<QQ", log, off + 24)
        assert marvin32(log[off + 40:off + size], seed) == hash1
        assert marvin32(log[off:off + 32], seed) == hash2
    assert marvin32(b"abc", seed) != marvin32(b"abd", seed)


def test_old_format_matches_windows7() -> None:
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive")
    r = replay(primary, logs, "OldDirtyHive")
    assert (r.log_format, r.used, r.sequence) == ("old", ("OldDirtyHive.LOG1",), 5)
    assert r.applied == ("OldDirtyHive.LOG1: 64 dirty pages of 512 bytes",)
    ours = _clean(r)
    windows = Hive.open(shared_fixture(f"{DIRTY}/yarp_OldDirtyHive/RecoveredHive_Windows7"))
    assert our_dump(ours) == our_dump(windows)
    assert ours.find("key_with_many_subkeys\\5000\\find_me_in_log") is not None
    assert ours.find("key_with_many_subkeys\\1") is None
    # Same cells, except one key whose longest-value-name field Windows 7 recomputed (24 -> 2) when
    # it wrote the hive again after the recovery (its sequence numbers went on to 7).
    a, b = _cells(ours), _cells(windows)
    assert a.keys() == b.keys()
    differ = [off for off in a if a[off] != b[off]]
    assert len(differ) == 1
    field = NK.offsets["max_value_name"][0]
    x, y = bytearray(a[differ[0]]), bytearray(b[differ[0]])
    assert x[:2] == b"nk" and (x[field], y[field]) == (24, 2)
    x[field:field + 4] = y[field:field + 4]
    assert x == y


def test_new_format_matches_windows10_byte_for_byte() -> None:
    primary, logs = _sample("yarp_NewDirtyHive1", "NewDirtyHive")
    r = replay(primary, logs, "NewDirtyHive")
    assert r.used == ("NewDirtyHive.LOG1", "NewDirtyHive.LOG2") and r.sequence == 5
    ours = _clean(r)
    windows_file = shared_fixture(f"{DIRTY}/yarp_NewDirtyHive1/RecoveredHive_Windows10").read_bytes()
    assert r.data[4096:] == windows_file[4096:]  # every hive bin, and the file's tail, as Windows wrote them
    assert our_dump(ours) == our_dump(Hive.from_bytes(windows_file))
    assert ours.find("Key3\\Key3_2") is not None and ours.find("Key1") is None
    # Windows' own base block after its next write differs only by sequence numbers and checksum.
    diff = [i for i in range(512) if r.data[i] != windows_file[i]]
    assert set(diff) <= set(range(4, 12)) | set(range(508, 512))


def test_logs_given_in_any_order() -> None:
    primary, logs = _sample("yarp_NewDirtyHive1", "NewDirtyHive")
    assert replay(primary, logs[::-1], "h").data == replay(primary, logs, "h").data


def test_single_log_scheme_and_log_artifact() -> None:
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive")
    good = replay(primary, logs, "h")
    log1 = logs[0].data
    # The single-log scheme: only NAME.LOG.
    single = [LogFile("OldDirtyHive.LOG1", None), LogFile("OldDirtyHive.LOG2", None),
              LogFile("OldDirtyHive.LOG", log1)]
    r = replay(primary, single, "h")
    assert r.used == ("OldDirtyHive.LOG",) and r.data == good.data
    # Beside .LOG1/.LOG2, a .LOG is an installation artifact that Windows ignores, even a damaged one.
    assert replay(primary, _logs_with(logs, LOG=b"regf" + bytes(1000)), "h").data == good.data


def test_stale_log_is_skipped() -> None:
    primary, logs = _sample("yarp_NewDirtyHive2", "NewDirtyHive")
    r = replay(primary, logs, "NewDirtyHive")
    assert r.used == ("NewDirtyHive.LOG2",) and r.sequence == 5
    assert "NewDirtyHive.LOG1 not used: its entries start at sequence 2, before the primary's 3" in r.summary
    _clean(r)


@pytest.fixture(scope="module")
def system_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = shared_fixture(f"{DIRTY}/regipy_SYSTEM_B")
    out = tmp_path_factory.mktemp("system_b")
    for name in ("SYSTEM_B", "SYSTEM_B.LOG1", "SYSTEM_B.LOG2"):
        (out / name).write_bytes(lzma.decompress((folder / f"{name}.xz").read_bytes()))
    return out


def test_system_b_matches_regipy_value_by_value(system_b: Path, tmp_path: Path) -> None:
    from regipy import recovery  # the `test` extra installs it: a missing regipy fails, never skips
    r = replay((system_b / "SYSTEM_B").read_bytes(), _logs(system_b, "SYSTEM_B"), "SYSTEM_B")
    assert r.used == ("SYSTEM_B.LOG1", "SYSTEM_B.LOG2") and r.sequence == 2130
    assert r.applied == ("SYSTEM_B.LOG1: entries 2107-2110 (10 dirty pages)",
                         "SYSTEM_B.LOG2: entries 2111-2130 (305 dirty pages)")
    ours = _clean(r)
    # regipy applies every entry of its "secondary" log, then of its "primary" one: LOG1 holds the
    # older entries here, so it goes first.
    out = tmp_path / "regipy_recovered"
    recovery.apply_transaction_logs(str(system_b / "SYSTEM_B"), str(system_b / "SYSTEM_B.LOG2"),
                                    secondary_log_path=str(system_b / "SYSTEM_B.LOG1"),
                                    restored_hive_path=str(out))
    theirs = Hive.from_bytes(_equal_sequences(out.read_bytes()), name="regipy")
    a, b = our_dump(ours), our_dump(theirs)
    assert len(a) > 10000
    assert a == b
    before = our_dump(Hive.from_bytes((system_b / "SYSTEM_B").read_bytes(), allow_dirty=True))
    assert a != before  # the logs did change keys or values


def _equal_sequences(data: bytes) -> bytes:
    """regipy leaves sequence numbers as it found them; only our reader's dirty check needs them equal."""
    b = bytearray(data)
    b[8:12] = b[4:8]
    struct.pack_into("<I", b, 508, base_block_checksum(b))
    return bytes(b)


# --- damaged samples ---------------------------------------------------------------------------------


def test_yarp_damaged_samples_refused() -> None:
    bad = "yarp_corrupted"
    primary, logs = _sample(f"{bad}/BadBaseBlockHive", "BadBaseBlockHive")
    _refused(primary, logs, "its base block checksum is wrong (a damaged base block is not rebuilt")
    primary, logs = _sample(f"{bad}/BadLogHive1", "BadLogHive")
    _refused(primary, logs, "BadLogHive.LOG1: its base block checksum is wrong")
    primary, logs = _sample(f"{bad}/BadLogHive2", "BadLogHive")
    _refused(primary, logs, "BadLogHive.LOG1: no dirty vector (signature b'INVL'")
    primary, logs = _sample(f"{bad}/BadLogHive3", "BadLogHive")
    _refused(primary, logs, "BadLogHive.LOG1: its base block checksum is wrong")
    truncated = shared_fixture(f"{DIRTY}/{bad}/TruncatedDirtyHive").read_bytes()
    _refused(truncated, [], "no log file (.LOG1, .LOG2 or .LOG) is beside it")


def test_old_log_with_trailing_bytes_is_used_as_windows_does() -> None:
    # The same LOG1 with 4 bytes of an earlier, longer log behind its last dirty page.
    remnant = shared_fixture(f"{DIRTY}/yarp_corrupted/OldLogWithRemnantData").read_bytes()
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive")
    good = replay(primary, logs, "h")
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive", LOG1=remnant)
    assert remnant[-4:] == b"remn" and replay(primary, logs, "h").data == good.data


def test_truncated_primary_refused() -> None:
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive")
    _refused(primary[:12288], logs, "the primary file is truncated (12288 bytes) and OldDirtyHive.LOG1 "
                                    "does not hold the missing hive bins")
    # NewDirtyHive1's first entry holds every hive bin: a truncated primary loses nothing there.
    primary, logs = _sample("yarp_NewDirtyHive1", "NewDirtyHive")
    whole, cut = replay(primary, logs, "h"), replay(primary[:8192], logs, "h")
    assert cut.data[:4096 + 0x5000] == whole.data[:4096 + 0x5000] and len(cut.data) == 4096 + 0x5000


def _entry_offsets(log: bytes) -> list[int]:
    out, off = [], 512
    while log[off:off + 4] == b"HvLE":
        out.append(off)
        off += struct.unpack_from("<I", log, off + 4)[0]
    return out


def _resum(log: bytearray, off: int) -> None:
    """Recompute an entry's hashes (a damage that keeps the entry self-consistent)."""
    seed = MARVIN32_LOG_SEED
    size = struct.unpack_from("<I", log, off + 4)[0]
    struct.pack_into("<Q", log, off + 24, marvin32(log[off + 40:off + size], seed))
    struct.pack_into("<Q", log, off + 32, marvin32(log[off:off + 32], seed))


def test_hand_damaged_new_logs_refused() -> None:
    primary, logs = _sample("yarp_NewDirtyHive1", "NewDirtyHive")
    log2 = logs[1].data
    assert log2 is not None
    offs = _entry_offsets(log2)
    # A flipped byte inside the last entry's pages: a torn or damaged write.
    b = bytearray(log2)
    b[offs[2] + 4096] ^= 1
    _refused(primary, _logs_with(logs, LOG2=bytes(b)), "log entry 5 at offset 32768: its hashes do not match")
    # The middle entry's signature destroyed: the next one would follow a gap.
    b = bytearray(log2)
    b[offs[1]:offs[1] + 4] = b"XXXX"
    _refused(primary, _logs_with(logs, LOG2=bytes(b)), "an entry with sequence 5 at offset 32768 follows a "
                                                        "damaged or missing entry 4")
    # A page reference pointing past the hive bins (hashes recomputed, so only the bounds check sees it).
    b = bytearray(log2)
    struct.pack_into("<I", b, offs[0] + LOG_ENTRY.size, 0x100000)
    _resum(b, offs[0])
    _refused(primary, _logs_with(logs, LOG2=bytes(b)), "is out of bounds")
    # LOG2's base block claims a later start than LOG1's last entry: a missing entry in between.
    b = bytearray(log2)
    struct.pack_into("<II", b, 4, 4, 4)
    struct.pack_into("<I", b, 508, base_block_checksum(b))
    _refused(primary, _logs_with(logs, LOG2=bytes(b)), "NewDirtyHive.LOG2 starts at sequence 4 but the "
                                                        "entries before it end at 2")
    # One half of the dual log missing.
    _refused(primary, _logs_with(logs, LOG2=None), "NewDirtyHive.LOG2 is missing")
    # Both empty: nothing to replay.
    _refused(primary, _logs_with(logs, LOG1=b"", LOG2=b""), "its logs are empty")


def test_hand_damaged_old_logs_refused() -> None:
    primary, logs = _sample("yarp_OldDirtyHive", "OldDirtyHive")
    log1 = logs[0].data
    assert log1 is not None
    _refused(primary, _logs_with(logs, LOG1=log1[:20000]), "OldDirtyHive.LOG1: truncated: 64 dirty pages")
    b = bytearray(log1)
    struct.pack_into("<II", b, 4, 6, 6)  # written for a later write than the primary's
    struct.pack_into("<I", b, 508, base_block_checksum(b))
    _refused(primary, _logs_with(logs, LOG1=bytes(b)), "its sequence number 6 is not the primary's 5")
    b = bytearray(log1)
    struct.pack_into("<I", b, 4, 6)  # its own sequence numbers differ: the log write did not finish
    struct.pack_into("<I", b, 508, base_block_checksum(b))
    _refused(primary, _logs_with(logs, LOG1=bytes(b)), "its own sequence numbers differ (6 != 5)")
    # A dirty page that breaks a hive bin header: the replayed hive would not read as a whole.
    bits = [i for i in range(0x77000 // 512) if log1[516 + i // 8] >> (i % 8) & 1]
    first_hbin_page = next(n for n, bit in enumerate(bits) if bit * 512 % 4096 == 0)
    b = bytearray(log1)
    b[1024 + first_hbin_page * 512:1024 + first_hbin_page * 512 + 4] = b"XXXX"
    _refused(primary, _logs_with(logs, LOG1=bytes(b)), "the hive replayed from its logs is not consistent")
    # A clean hive has nothing to replay.
    windows = shared_fixture(f"{DIRTY}/yarp_OldDirtyHive/RecoveredHive_Windows7").read_bytes()
    _refused(windows, logs, "its sequence numbers are equal")


def _logs_with(logs: list[LogFile], **override: bytes | None) -> list[LogFile]:
    return [LogFile(lf.name, override[lf.name.rsplit(".", 1)[1]]) if lf.name.rsplit(".", 1)[1] in override
            else lf for lf in logs]
