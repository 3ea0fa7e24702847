"""Disk: open_source on files and loop devices (compared with blockdev), pread/pwrite, identity, recheck."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.disk.device import open_source, open_target, recheck
from core.disk.discover import describe
from core.errors import SourceError, TargetRefused, TargetWriteError, UsageError
from tests.conftest import need_root_tools
from tests.disk.loops import _run, loop

MiB = 1 << 20


def make_file(path: Path, size: int, data: bytes = b"") -> Path:
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(size)
    return path


def pattern(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


# --- open_source -------------------------------------------------------------------------------------


def test_source_file_defaults_to_512_and_can_be_declared_4096(tmp_path: Path) -> None:
    img = make_file(tmp_path / "a.img", 3 * MiB, pattern(4096))
    with open_source(str(img)) as d:
        assert (d.kind, d.size, d.logical_sector_size, d.physical_sector_size) == ("file", 3 * MiB, 512, 512)
        assert d.read_only and d.real_path == str(img)
        assert d.read(0, 4096) == pattern(4096)
        # The fd has no write access at all: imaging can never change the source.
        with pytest.raises(OSError):
            os.pwrite(d.fd, b"x", 0)
        with pytest.raises(TargetWriteError):
            d.pwrite(0, b"x")
    with open_source(str(img), sector_size=4096) as d:
        assert d.logical_sector_size == 4096
    with pytest.raises(UsageError):
        open_source(str(img), sector_size=1000)


def test_source_fd_is_close_on_exec(tmp_path: Path) -> None:
    img = make_file(tmp_path / "a.img", MiB)
    with open_source(str(img)) as d:
        assert not os.get_inheritable(d.fd)
        import fcntl
        assert fcntl.fcntl(d.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert d.fd == -1  # closed by the context manager


@pytest.mark.parametrize("kind", ["missing", "directory", "chardev", "empty"])
def test_bad_sources_are_clean_errors_naming_the_path(tmp_path: Path, kind: str) -> None:
    path = {"missing": str(tmp_path / "nope.img"), "directory": str(tmp_path), "chardev": "/dev/null",
            "empty": str(make_file(tmp_path / "empty.img", 0))}[kind]
    with pytest.raises(SourceError) as info:
        open_source(path)
    assert path in str(info.value)


def test_pread_stops_at_end_and_identity(tmp_path: Path) -> None:
    img = make_file(tmp_path / "a.img", 10000, pattern(10000))
    with open_source(str(img)) as d:
        assert d.pread(9990, 100) == pattern(10000)[9990:]
        assert d.pread(20000, 10) == b""
        ident = d.identity()
        assert ident["size"] == 10000 and ident["path"] == str(img) and ident["kind"] == "file"
        assert "dev" not in ident
        assert describe(d) == f"{img} (10.0 kB)"


@pytest.mark.root
def test_source_loop_device_matches_blockdev(tmp_path: Path) -> None:
    need_root_tools("losetup", "blockdev")
    img = make_file(tmp_path / "a.img", 5 * MiB, pattern(8192))
    with loop(img) as dev:
        with open_source(dev) as d:
            assert d.kind == "block"
            assert d.size == int(_run(["blockdev", "--getsize64", dev]))
            assert d.logical_sector_size == int(_run(["blockdev", "--getss", dev]))
            assert d.physical_sector_size == int(_run(["blockdev", "--getpbsz", dev]))
            assert d.read(0, 8192) == pattern(8192)
            st = os.stat(dev)
            ident = d.identity()
            assert ident["dev"] == f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            assert ident["backing_file"] == str(img)
            assert describe(d).startswith(f"{dev} (") and f"file {img}" in describe(d)
        # A by-path style symlink to the device opens the same device and keeps the given path.
        link = tmp_path / "by-id-link"
        link.symlink_to(dev)
        with open_source(str(link)) as d:
            assert d.path == str(link) and d.real_path == dev and d.rdev == os.stat(dev).st_rdev


@pytest.mark.root
def test_source_4k_loop_reports_4096(tmp_path: Path) -> None:
    need_root_tools("losetup")
    img = make_file(tmp_path / "a.img", 4 * MiB)
    try:
        ctx = loop(img, sector_size=4096)
        dev = ctx.__enter__()
    except RuntimeError as e:
        pytest.skip(f"kernel/losetup lacks --sector-size: {e}")
    try:
        with open_source(dev) as d:
            assert d.logical_sector_size == 4096
        with pytest.raises(UsageError):
            open_source(dev, sector_size=512)  # contradicts the device
    finally:
        ctx.__exit__(None, None, None)


# --- writing a target --------------------------------------------------------------------------------


@pytest.mark.root
def test_target_loop_pwrite_sync_and_read_back(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 4 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 4 * MiB)
    data = pattern(3 * MiB + 123)  # not sector aligned, larger than one pwrite chunk of some kernels
    with loop(tgt) as dev:
        with open_target(dev, sources=[str(src)], required_size=4 * MiB, sector_size=512) as d:
            d.pwrite(1000, data)
            d.sync(drop_cache=True)
            assert d.pread(1000, len(data)) == data
            with pytest.raises(TargetWriteError) as info:
                d.pwrite(4 * MiB - 10, b"x" * 11)  # one byte past the end
            assert str(4 * MiB) in str(info.value)
            recheck(d)  # nothing changed
    assert tgt.read_bytes()[1000:1000 + len(data)] == data


@pytest.mark.root
@pytest.mark.parametrize("on", ["file", "loop"])
def test_direct_writes_mix_with_buffered_ends_and_read_back_from_the_medium(tmp_path: Path, on: str) -> None:
    """enable_direct: the aligned middle of a write goes O_DIRECT (and, with verify, is read back at
    once), the unaligned ends go buffered; together they hold exactly the data, next to bytes that
    must stay untouched, and feed_from_medium returns what is on the medium."""
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", 16 * MiB)
    tgt = make_file(tmp_path / "tgt.img", 16 * MiB, b"\xaa" * (16 * MiB))
    data = pattern(9 * MiB + 4321)  # longer than one 4 MiB bounce buffer, unaligned at both ends
    off = 3 * MiB + 1000

    def check(path: str) -> None:
        with open_target(path, sources=[str(src)], required_size=16 * MiB, sector_size=512) as d:
            assert d.enable_direct()
            lo, hi = d.pwrite(off, data, verify=True)
            assert (lo, hi) == (3 * MiB + 4096, (off + len(data)) // 4096 * 4096)
            assert d.pwrite(5000, b"small", verify=True) == (0, 0)  # nothing aligned: buffered only
            d.sync(drop_cache=True)
            got = bytearray()
            assert d.feed_from_medium(off, len(data), got.extend) == len(data)
            assert bytes(got) == data
        blob = tgt.read_bytes()
        assert blob[off:off + len(data)] == data
        assert blob[5000:5005] == b"small"
        assert blob[off - 4096:off] == b"\xaa" * 4096 and blob[off + len(data):][:4096] == b"\xaa" * 4096

    if on == "file":
        check(str(tgt))
    else:
        with loop(tgt) as dev:
            check(dev)


def test_target_file_pwrite_accepts_memoryview(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", MiB)
    tgt = make_file(tmp_path / "tgt.img", MiB)
    buf = bytearray(pattern(4096))
    with open_target(str(tgt), sources=[str(src)], required_size=MiB, sector_size=512) as d:
        d.pwrite(512, memoryview(buf)[100:])
        d.sync()
    assert tgt.read_bytes()[512:512 + 3996] == bytes(buf[100:])


# --- recheck ------------------------------------------------------------------------------------------


def test_recheck_refuses_a_replaced_or_resized_file(tmp_path: Path) -> None:
    src = make_file(tmp_path / "src.img", MiB)
    tgt = make_file(tmp_path / "tgt.img", 2 * MiB)
    with open_target(str(tgt), sources=[str(src)], required_size=MiB, sector_size=512) as d:
        recheck(d)
        os.truncate(tgt, 3 * MiB)
        with pytest.raises(TargetRefused) as info:
            recheck(d)
        assert str(2 * MiB) in str(info.value) and str(3 * MiB) in str(info.value)
        os.unlink(tgt)
        make_file(tgt, 2 * MiB)  # same name, other file
        with pytest.raises(TargetRefused) as info:
            recheck(d)
        assert "another file" in str(info.value)


@pytest.mark.root
def test_recheck_refuses_a_loop_device_that_changed(tmp_path: Path) -> None:
    need_root_tools("losetup")
    src = make_file(tmp_path / "src.img", MiB)
    tgt = make_file(tmp_path / "tgt.img", 4 * MiB)
    with loop(tgt) as dev:
        with open_target(dev, sources=[str(src)], required_size=MiB, sector_size=512) as d:
            recheck(d)
            os.truncate(tgt, 6 * MiB)
            _run(["losetup", "-c", dev])  # the kernel re-reads the size: the "disk" changed
            with pytest.raises(TargetRefused) as info:
                recheck(d)
            assert str(4 * MiB) in str(info.value) and str(6 * MiB) in str(info.value)
