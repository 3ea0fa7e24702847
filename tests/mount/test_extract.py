"""`rescue extract`: files and folders out of an image, with their times, never outside --to.

Compared with the source disk read through ntfs-3g; traversal attempts come both from the command
line (PATH) and from the tree being copied (links leading out, links planted in the target).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from core.format.volume import MIN_SPLIT
from core.progress import Progress
from rescue.mount.extract import Copier, ExtractResult, split_path
from core.errors import UsageError
from tests.conftest import need_root_tools
from tests.factory import cached_disk_info
from tests.images import run_rescue
from tests.mount.mountlib import (PW, chunk_of_user_files, damage_chunk, hash_tree, losetup_a, make_backup,
                                  sweep, without_streams)
from tests.ntfs3g import mounted_ntfs, partition_hashes

SKIP = {"pagefile.sys"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_root_tools("losetup", "ntfs-3g", "umount")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the kernel has no FUSE (/dev/fuse missing)")
    base = tmp_path_factory.mktemp("extract")
    sweep(str(base))
    mbr, gpt = cached_disk_info("mbr-small"), cached_disk_info("gpt-small")
    make_backup(mbr.path, base / "split", split=MIN_SPLIT)
    make_backup(gpt.path, base / "enc", password=PW)
    (base / "pw").write_bytes(PW + b"\n")
    try:
        yield {"base": base, "mbr": mbr, "gpt": gpt, "hashes": {"mbr": partition_hashes(mbr.path)}}
    finally:
        sweep(str(base))


def no_leftovers() -> None:
    assert not [m for m in open("/proc/self/mountinfo") if "/run/rescue/extract-" in m]
    assert "/run/rescue/extract-" not in losetup_a()


def subtree(hashes: dict[str, str], prefix: str) -> dict[str, str]:
    """Entries below ``prefix`` ("Users/Anna"), relative to its parent (as extract lays them out)."""
    parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return {k[len(parent):]: v for k, v in without_streams(hashes).items()
            if k == prefix or k.startswith(prefix + "/")}


@pytest.mark.root
def test_extract_folder_matches_source_with_times(env: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_rescue("extract", str(env["base"] / "split"), r"Users\Anna", "--to", str(out))
    assert r.returncode == 0, r.stderr
    no_leftovers()
    want = subtree(env["hashes"]["mbr"][2], "Users/Anna")
    disk, part = env["mbr"], env["mbr"].part("windows")
    # times first: listing or reading the copy would update its atimes (relatime)
    with mounted_ntfs(disk.path, part.start, part.size) as src:
        for rel in want:
            a, b = os.lstat(src / "Users" / rel), os.lstat(out / rel)
            assert (a.st_mtime_ns, a.st_atime_ns) == (b.st_mtime_ns, b.st_atime_ns), rel
    got, eio = hash_tree(out)
    assert eio == set()
    assert got == want


@pytest.mark.root
def test_extract_single_file_encrypted_gpt_default_partition(env: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_rescue("extract", str(env["base"] / "enc"), "/windows/system32/config/SYSTEM", "--to", str(out),
                   "--password-file", str(env["base"] / "pw"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["SYSTEM"]
    want = env["gpt"].manifest[3]["Windows/System32/config/SYSTEM"]
    assert hash_tree(out)[0] == {"SYSTEM": want}
    no_leftovers()


@pytest.mark.root
def test_links_kept_only_inside(env: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_rescue("extract", str(env["base"] / "split"), "ProgramData", "--to", str(out))
    assert r.returncode == 0, r.stderr
    # the junction ProgramData/Application Data -> ProgramData stays inside: a relative link
    assert os.readlink(out / "ProgramData" / "Application Data") == "."
    r = run_rescue("extract", str(env["base"] / "split"), "Users", "--to", str(out))
    assert r.returncode == 0, r.stderr
    # Users/All Users -> /ProgramData leads out of the copied folder: skipped and reported
    assert not os.path.lexists(out / "Users" / "All Users")
    assert "skipped Users/All Users" in r.stderr


@pytest.mark.root
def test_traversal_refused(env: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad in (r"..\..\etc", "Users/../../etc", "C:\\Users\\..\\..\\x", ".."):
        r = run_rescue("extract", str(env["base"] / "split"), bad, "--to", str(out))
        assert r.returncode == 3, (bad, r.stderr)
        assert "refusing path" in r.stderr
    assert not out.exists()
    # links planted in the target are never written through
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    out.mkdir()
    (out / "letter-01.txt").symlink_to(victim)
    (out / "Documents").symlink_to(outside)
    r = run_rescue("extract", str(env["base"] / "split"), "Users/Anna/Documents/letter-01.txt", "--to", str(out))
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "keep me"
    assert not (out / "letter-01.txt").is_symlink()
    assert hash_tree(out)[0]["letter-01.txt"] == env["hashes"]["mbr"][2]["Users/Anna/Documents/letter-01.txt"]
    r = run_rescue("extract", str(env["base"] / "split"), "Users/Anna/Documents", "--to", str(out))
    assert r.returncode == 0, r.stderr
    assert "skipped Users/Anna/Documents" in r.stderr
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    # a path that does not exist, a partition that does not exist
    r = run_rescue("extract", str(env["base"] / "split"), "Users/Nobody", "--to", str(out))
    assert r.returncode == 3 and "no Users/Nobody" in r.stderr
    r = run_rescue("extract", str(env["base"] / "split"), "x", "--to", str(out), "--partition", "7")
    assert r.returncode == 3 and "no partition 7" in r.stderr
    no_leftovers()


@pytest.mark.root
def test_unreadable_files_reported_exit_20(env: dict[str, Any], tmp_path: Path) -> None:
    disk = env["mbr"]
    part = disk.part("windows")
    folder = tmp_path / "bad"
    res = make_backup(disk.path, folder)
    chunk, broken = chunk_of_user_files(folder, disk, part)
    damage_chunk(folder, res, chunk)
    out = tmp_path / "out"
    r = run_rescue("extract", str(folder), "/", "--to", str(out))
    assert r.returncode == 20, r.stderr
    log = r.stderr.split("reasons in ", 1)[1].split(")", 1)[0]
    assert Path(log).is_file(), r.stderr  # kept: it says why the reads failed
    os.unlink(log)
    reported = {line.split("could not read ", 1)[1].rsplit(": unreadable", 1)[0]
                for line in r.stderr.splitlines() if "could not read " in line}
    assert reported == broken
    got, eio = hash_tree(out)
    assert eio == set()
    src = env["hashes"]["mbr"][2]
    assert not set(got) & broken  # no half-written file
    for k, v in got.items():
        if k not in SKIP:
            assert src[k] == v if not v.startswith("link:") else True, k
    no_leftovers()


@pytest.mark.root
def test_to_an_existing_file_and_no_log_left(env: dict[str, Any], tmp_path: Path) -> None:
    """--to naming a file is one usage line (the file untouched); an extract leaves a log only when a file
    could not be read (the error then names it), not after a clean copy nor after a refused PATH."""
    logs = set(Path("/run/rescue").glob("*.log")) if Path("/run/rescue").is_dir() else set()
    file = tmp_path / "file"
    file.write_text("keep me")
    doc = "Users/Anna/Documents/letter-01.txt"
    r = run_rescue("extract", str(env["base"] / "split"), doc, "--to", str(file))
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("rescue: error: ") and r.stderr.count("\n") == 1 and "not a folder" in r.stderr
    assert file.read_text() == "keep me"
    r = run_rescue("extract", str(env["base"] / "split"), doc, "--to", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    r = run_rescue("extract", str(env["base"] / "split"), "Users/Nobody", "--to", str(tmp_path / "out"))
    assert r.returncode == 3, r.stderr
    assert set(Path("/run/rescue").glob("*.log")) <= logs
    no_leftovers()


# --- without a mount: the copier's rules on a tree we build ------------------------------------------

def test_split_path() -> None:
    assert split_path(r"Users\Anna\Documents") == ["Users", "Anna", "Documents"]
    assert split_path("C:\\Users\\Anna\\") == ["Users", "Anna"]
    assert split_path("/./Users//x") == ["Users", "x"]
    assert split_path("") == []
    for bad in ("..", "a/../b", r"a\..\..\b", "a/\0"):
        with pytest.raises(UsageError):
            split_path(bad)


def test_copier_links(tmp_path: Path) -> None:
    root = tmp_path / "part"
    (root / "top" / "sub").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "top" / "sub" / "f").write_text("data")
    os.utime(root / "top" / "sub" / "f", ns=(1_000_000_000, 2_000_000_000))
    (root / "top" / "abs_in").symlink_to(root / "top" / "sub")
    (root / "top" / "rel_in").symlink_to("sub/f")
    (root / "top" / "abs_out").symlink_to("/etc/passwd")
    (root / "top" / "rel_up").symlink_to("../../../../../etc")
    (root / "top" / "sibling").symlink_to(root / "other")
    (root / "top" / "fifo_here").mkdir()
    os.mkfifo(root / "top" / "fifo_here" / "p")
    os.utime(root / "top" / "sub", ns=(3_000_000_000, 4_000_000_000))
    out = tmp_path / "out"
    res = ExtractResult("img", 2, "top", str(out))
    Copier(str(root), res, Progress()).run(["top"])
    assert os.readlink(out / "top" / "abs_in") == "sub"
    assert os.readlink(out / "top" / "rel_in") == "sub/f"
    assert (out / "top" / "sub" / "f").read_text() == "data"
    assert os.stat(out / "top" / "sub" / "f").st_mtime_ns == 2_000_000_000
    assert os.stat(out / "top" / "sub").st_mtime_ns == 4_000_000_000
    skipped = dict(res.skipped)
    assert set(skipped) == {"top/abs_out", "top/rel_up", "top/sibling", "top/fifo_here/p"}
    for name in ("abs_out", "rel_up", "sibling"):
        assert not os.path.lexists(out / "top" / name)
    assert res.files == 1 and res.links == 2 and not res.failed
    # a link as PATH leading out of the partition is refused
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(UsageError):
        Copier(str(root), ExtractResult("img", 2, "escape", str(out)), Progress()).run(["escape", "out"])
