"""`rescue mount`/`umount` on images of factory-built Windows 7 disks (MBR and GPT).

The oracle is independent of our code: every file is hashed through ntfs-3g (and mtools for FAT) on
the source disk and compared with the same file read through the mounted image; which files a damaged
chunk breaks comes from ntfscluster on the source; mounts and loop devices from /proc/self/mountinfo
and losetup.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from core.engine.overlay import resolved
from core.engine.view import open_view
from core.format.volume import MIN_SPLIT
from rescue.mount import fusefs, server, stack
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info, copy_disk
from tests.images import run_rescue
from rescue.mount.layout import point_manifest
from tests.mount.mountlib import (PW, chunk_of_user_files, damage_chunk, hash_tree, losetup_a, make_backup,
                                  our_loops, our_mounts, sha256_file, sweep, without_streams)
from tests.ntfs3g import attached, mounted_ntfs, partition_hashes

pytestmark = pytest.mark.root

SKIP = {"pagefile.sys"}  # restored as zeros, as the commercial tools do: not the source's bytes


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need_root_tools("losetup", "ntfs-3g", "umount")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the kernel has no FUSE (/dev/fuse missing)")
    b = tmp_path_factory.mktemp("mount")
    sweep(str(b))
    try:
        yield b
    finally:
        sweep(str(b))  # a failed test must not leave a mount (or a loop device) behind


@pytest.fixture(scope="module")
def images(base: Path) -> dict[str, Any]:
    mbr, gpt = cached_disk_info("mbr-small"), cached_disk_info("gpt-small")
    out: dict[str, Any] = {"disks": {"mbr": mbr, "gpt": gpt}}
    make_backup(mbr.path, base / "plain")
    make_backup(gpt.path, base / "enc", password=PW)
    out["split"] = make_backup(mbr.path, base / "split", split=MIN_SPLIT)
    assert len(out["split"].volumes) >= 3
    out["hashes"] = {"mbr": partition_hashes(mbr.path), "gpt": partition_hashes(gpt.path)}
    return out


@pytest.fixture
def mp(base: Path, tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "mnt"
    d.mkdir()
    try:
        yield d
    finally:
        left = stack.teardown(str(d), lazy=True)
        Path(server.default_log(str(d))).unlink(missing_ok=True)
        if left:
            pytest.fail(f"the test left {d} mounted")


def region_sha(path: Path, offset: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while size > 0:
            block = f.read(min(size, 1 << 20))
            h.update(block)
            size -= len(block)
    return h.hexdigest()


def assert_clean(mp: Path) -> None:
    assert our_mounts(str(mp)) == [], open("/proc/self/mountinfo").read()
    assert our_loops(str(mp)) == [], losetup_a()
    assert str(mp) not in losetup_a()


def compare(mnt: Path, src: dict[str, str]) -> None:
    got, eio = hash_tree(mnt)
    assert eio == set()
    want = {k: v for k, v in without_streams(src).items() if k not in SKIP}
    got = {k: v for k, v in got.items() if k not in SKIP}
    assert got == want


@pytest.mark.parametrize("kind,folder,pw", [("mbr", "plain", None), ("gpt", "enc", PW), ("mbr", "split", None)])
def test_every_file_matches_the_source(images: dict[str, Any], base: Path, mp: Path, kind: str, folder: str,
                                       pw: bytes | None) -> None:
    disk = images["disks"][kind]
    src = images["hashes"][kind]
    env = {"RESCUE_PASSWORD": pw.decode()} if pw else None
    r = run_rescue("mount", str(base / folder), str(mp), env=env)
    assert r.returncode == 0, r.stderr
    try:
        info = json.loads((mp / ".raw" / "mount.json").read_text())
        assert info["pid"] > 0
        for p in disk.partitions:
            if p.fs == "ntfs":
                assert (mp / f"p{p.number}").is_dir()
                compare(mp / f"p{p.number}", src[p.number])
            elif p.fs == "vfat":
                # fusefat shows 8.3 names without their NT lower-case flags: compare case-insensitively
                got, eio = hash_tree(mp / f"p{p.number}")
                assert eio == set()
                assert {k.casefold(): v for k, v in got.items()} == \
                    {k.casefold(): v for k, v in src[p.number].items()}
            else:  # MSR: no filesystem, shown as its raw bytes, stored sector by sector
                raw = mp / f"p{p.number}"
                assert raw.is_file() and raw.stat().st_size == p.size
                assert sha256_file(raw) == region_sha(disk.path, p.start, p.size)
            # the raw file is the partition's bytes where the image stores them; check the boot sector
            with open(mp / ".raw" / f"p{p.number}", "rb") as f, open(disk.path, "rb") as g:
                g.seek(p.start)
                assert f.read(65536) == g.read(65536)
        with open(mp / ".raw" / "disk", "rb") as f, open(disk.path, "rb") as g:
            assert f.read(512) == g.read(512)  # the partition table
        assert (mp / ".raw" / "disk").stat().st_size == disk.size
        with pytest.raises(OSError):
            open(mp / ".raw" / "disk", "r+b")  # read-only
    finally:
        r = run_rescue("umount", str(mp))
    assert r.returncode == 0, r.stderr
    assert_clean(mp)
    r = run_rescue("umount", str(mp))  # idempotent
    assert r.returncode == 0 and "not mounted" in r.stdout


def test_mount_opens_in_well_under_a_second(images: dict[str, Any], base: Path, mp: Path) -> None:
    """No full read or decompression on open: the view and the FUSE server are up in a fraction of a
    second; the whole stack (with two ntfs-3g mounts) in about a second on a loaded CI machine."""
    t0 = time.monotonic()
    with open_view(str(base / "split"), None, lambda: None) as view:
        opened = time.monotonic() - t0
        res = server.start(view, str(mp))
        ready = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        with open(mp / "p2" / "Windows" / "System32" / "config" / "SYSTEM", "rb") as f:
            assert len(f.read(4096)) == 4096
        first_byte = time.monotonic() - t1
        print(f"open {opened * 1000:.0f} ms, stack ready {ready * 1000:.0f} ms, first byte {first_byte * 1000:.0f} ms")
        assert opened < 0.5
        assert ready < 2.0
    finally:
        stack.teardown(str(mp))
        server.reap(res.pid)
    assert_clean(mp)


def test_corrupt_chunk_gives_eio_for_exactly_its_files(images: dict[str, Any], base: Path, mp: Path,
                                                       tmp_path: Path) -> None:
    disk = images["disks"]["mbr"]
    part = disk.part("windows")
    folder = tmp_path / "bad"
    res = make_backup(disk.path, folder)
    chunk, expected = chunk_of_user_files(folder, disk, part)
    damage_chunk(folder, res, chunk)
    r = run_rescue("mount", str(folder), str(mp))
    assert r.returncode == 0, r.stderr
    log = json.loads((mp / ".raw" / "mount.json").read_text())["log"]
    try:
        got, eio = hash_tree(mp / f"p{part.number}")
        assert eio == expected
        src = images["hashes"]["mbr"][part.number]
        for k, v in got.items():  # everything else is intact
            if k not in SKIP and ":" not in k.rsplit("/", 1)[-1]:
                assert src[k] == v, k
        assert set(without_streams(src)) - SKIP - set(got) == expected
    finally:
        assert run_rescue("umount", str(mp)).returncode == 0
    assert_clean(mp)
    text = Path(log).read_text()
    assert f"chunk {chunk}" in text and "EIO" in text


def test_stale_mount_is_cleaned(images: dict[str, Any], base: Path, mp: Path) -> None:
    r = run_rescue("mount", str(base / "plain"), str(mp))
    assert r.returncode == 0, r.stderr
    pid = json.loads((mp / ".raw" / "mount.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # the server dies: its mount is stale ("transport endpoint ...")
    deadline = time.monotonic() + 10
    while stack._alive(str(mp)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert our_mounts(str(mp))
    r = run_rescue("umount", str(mp))
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20  # the orphaned ntfs-3g processes let go of their loop devices
    while our_loops(str(mp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_clean(mp)


def test_foreground_ctrl_c_unmounts_everything(images: dict[str, Any], base: Path, mp: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "RESCUE_PASSWORD": PW.decode()}
    proc = subprocess.Popen([sys.executable, "-m", "rescue", "mount", "--foreground", str(base / "enc"), str(mp)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("unmount with"):
                break
        assert (mp / "p3" / "Windows").is_dir()
        assert (mp / "p1" / "EFI").is_dir()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_clean(mp)


def test_wrong_password_and_missing_volume(images: dict[str, Any], base: Path, mp: Path, tmp_path: Path) -> None:
    r = run_rescue("mount", str(base / "enc"), str(mp), env={"RESCUE_PASSWORD": "wrong"})
    assert r.returncode == 30, r.stderr
    r = run_rescue("mount", str(base / "enc"), str(mp))
    assert r.returncode == 31, r.stderr
    split = tmp_path / "split"
    subprocess.run(["cp", "-a", str(base / "split"), str(split)], check=True)
    (split / images["split"].volumes[1]).unlink()
    r = run_rescue("mount", str(split), str(mp))
    assert r.returncode == 21, r.stderr
    assert_clean(mp)


def test_setup_error_tears_down_what_was_set_up(images: dict[str, Any], base: Path, mp: Path,
                                                tmp_path: Path) -> None:
    """The Windows partition's $UpCase (read by ntfs-3g while mounting) is in a damaged chunk: the
    mount fails naming the partition, and the System Reserved mount made before it is undone."""
    disk = images["disks"]["mbr"]
    part = disk.part("windows")
    with attached(disk.path, part.start, part.size) as dev:
        out = subprocess.run(["ntfscluster", "-I", "10", dev], capture_output=True, text=True, check=True).stdout
    lcn = int(re.search(r"0x80 - non-resident\s+VCN\s+LCN\s+Length\s+0\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    upcase = part.start + lcn * 4096
    folder = tmp_path / "badupcase"
    res = make_backup(disk.path, folder)
    with open_view(str(folder), None, lambda: None) as view:
        extents = list(resolved(view.chain.manifests))
    chunk = next(ch for off, n, _, ch, _ in extents if off <= upcase < off + n)
    assert all(off >= part.start for off, n, _, ch, _ in extents if ch == chunk)  # p1 stays readable
    damage_chunk(folder, res, chunk)
    r = run_rescue("mount", str(folder), str(mp))
    assert r.returncode == 5, r.stderr
    assert f"partition {part.number} (ntfs)" in r.stderr
    assert_clean(mp)
    assert not os.path.ismount(mp)
    log = Path(server.default_log(str(mp))).read_text()
    assert "partition 1 (ntfs) mounted" in log and "setup failed" in log


def test_umount_refuses_a_foreign_mount(base: Path, mp: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mp)], check=True)
    try:
        r = run_rescue("umount", str(mp))
        assert r.returncode == 3 and "not a rescue mount" in r.stderr
        assert os.path.ismount(mp)
    finally:
        subprocess.run(["umount", str(mp)], check=True)


def test_incremental_chain_and_image_choice(images: dict[str, Any], base: Path, mp: Path, tmp_path: Path) -> None:
    """An incremental image mounts as its whole restore point (chain resolved on demand); --image picks
    the older full image."""
    d = images["disks"]["mbr"]
    part = d.part("windows")
    disk = copy_disk(d.path, tmp_path / "disk.img")
    folder = tmp_path / "chain"
    full = make_backup(disk, folder)
    with mounted_ntfs(disk, part.start, part.size, readonly=False, remove_hiberfile=True) as m:
        (m / "Users" / "Anna" / "Documents" / "new.txt").write_text("new file\n" * 1000)
        os.unlink(m / "Users" / "Anna" / "Documents" / "letter-03.txt")
    inc = make_backup(disk, folder, mode="incremental")
    assert inc.kind == "incremental" and inc.parent == full.image_id
    r = run_rescue("mount", str(folder), str(mp))
    assert r.returncode == 0, r.stderr
    try:
        compare(mp / f"p{part.number}", partition_hashes(disk)[part.number])
    finally:
        assert run_rescue("umount", str(mp)).returncode == 0
    r = run_rescue("mount", str(folder), str(mp), "--image", full.image_id)
    assert r.returncode == 0, r.stderr
    try:
        docs = mp / f"p{part.number}" / "Users" / "Anna" / "Documents"
        assert (docs / "letter-03.txt").is_file() and not (docs / "new.txt").exists()
        compare(mp / f"p{part.number}", images["hashes"]["mbr"][part.number])
    finally:
        assert run_rescue("umount", str(mp)).returncode == 0
    assert_clean(mp)


def test_a_decoded_chunk_goes_whole_into_the_page_cache(images: dict[str, Any], base: Path, mp: Path) -> None:
    """A read of 4 KiB decodes its chunk; the server hands the whole chunk to the kernel's page cache
    of the raw file (so a neighbouring file is not decoded again), at the right offsets: the resident
    bytes (fincore) cover the chunk's pieces near the read, far more than the 1 MiB readahead, and
    read back as the source disk's bytes."""
    need_root_tools("fincore")
    disk = images["disks"]["mbr"]
    part = disk.part("windows")
    with open_view(str(base / "plain"), None, lambda: None) as view:
        # the chunk with the most bytes inside the partition; its pieces within the server's window
        per: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for lo, n, ref, chunk, _ in resolved(view.chain.manifests, part.start, part.start + part.size):
            per.setdefault((ref, chunk), []).append((max(lo, part.start), min(lo + n, part.start + part.size)))
        key = max(per, key=lambda k: sum(b - a for a, b in per[k]))
        at = per[key][0][0]
        pieces = view.pieces(*key, at - fusefs.STORE_WINDOW, at + fusefs.STORE_WINDOW)
    want = sum(min(lo + n, part.start + part.size) - max(lo, part.start) for lo, n, _ in pieces)
    assert want > 2 << 20, "the factory disk has no chunk of more than 2 MiB in its Windows partition"
    r = run_rescue("mount", str(base / "plain"), str(mp))
    assert r.returncode == 0, r.stderr
    raw = mp / ".raw" / f"p{part.number}"
    try:
        with open(raw, "rb") as f:
            f.seek(at - part.start)
            assert len(f.read(4096)) == 4096

        def resident() -> int:
            out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", str(raw)],
                                 capture_output=True, text=True, check=True).stdout
            return int(out.split()[0])
        deadline = time.monotonic() + 30  # the store runs in the server's own thread: wait for it, bounded
        while resident() < want and time.monotonic() < deadline:
            time.sleep(0.05)
        assert resident() >= want
        with open(raw, "rb") as f, open(disk.path, "rb") as g:
            for lo, n, _ in pieces:
                a, b = max(lo, part.start), min(lo + n, part.start + part.size)
                f.seek(a - part.start)
                g.seek(a)
                assert f.read(b - a) == g.read(b - a), f"disk bytes {a}..{b}"
    finally:
        assert run_rescue("umount", str(mp)).returncode == 0
    assert_clean(mp)
