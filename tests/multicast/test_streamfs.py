"""The stream folder (`core.multicast.streamfs`) fed with a wrong stream: a restore from it fails and the
target is left without a partition table; the folder says why.

The server is left out: the test is the sender, writing into the stream folder's stdin what a receiver
that lost its place, lost the end of the stream or stopped receiving would hand it, and `rescue restore`
reads the folder as `rescue receive` does. Guards R-70.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from core.engine.chain import Chain
from core.engine.repo import Repository
from core.multicast.session import describe
from tests.conftest import need_root_tools
from tests.crash.crashlib import ROOT
from tests.images import run_rescue, small_disk

pytestmark = [pytest.mark.root]

MiB = 1 << 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_root_tools("fusermount3")
    work = tmp_path_factory.mktemp("sfs")
    r = run_rescue("backup", str(small_disk(work / "src.img")), str(work / "bk"))
    assert r.returncode == 0, r.stderr
    return work / "bk"


def stream_of(folder: Path) -> tuple[dict[str, object], bytes]:
    """The stream folder's spec (without its local paths) and the stream, as the server would send it."""
    repo = Repository(str(folder))
    with Chain(repo, repo.resolve(None), lambda: None) as chain:
        layout = describe(chain, repo.path)
    data = b"".join((folder / v.name).read_bytes() for v in layout.volumes)
    spec = layout.as_json()
    return {"manifests": [{"name": n, "path": str(folder / n)} for n, _ in layout.manifests],
            "volumes": spec["volumes"]}, data


@pytest.fixture()
def mounted(folder: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, bytes]]:
    spec, data = stream_of(folder)
    status = tmp_path / "status"
    spec.update(keep=16 * MiB, ahead=16 * MiB, stall=3.0, first=3.0, status=str(status))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "core.multicast.streamfs", str(mnt), str(tmp_path / "spec.json")],
                            stdin=subprocess.PIPE, cwd=ROOT)
    first = mnt / spec["manifests"][0]["name"]  # type: ignore[index]
    for _ in range(300):
        if first.exists():
            break
        assert proc.poll() is None, "the stream folder did not start"
        time.sleep(0.1)
    try:
        yield proc, mnt, status, data
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)


def feed(proc: subprocess.Popen[bytes], data: bytes, close: bool) -> threading.Thread:
    def run() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
            if close:
                proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the folder stopped reading (it failed, or was unmounted): what the test is about
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def restore_from(mnt: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(96 * MiB)
    return run_rescue("restore", str(mnt), str(target), "--yes", "--scratch", str(tmp_path)), target


def no_table(target: Path) -> bool:
    with open(target, "rb") as f:
        return f.read(512)[510:512] != b"\x55\xaa"


@pytest.mark.parametrize("fault", ["shifted", "cut", "stalled"])
def test_a_wrong_stream_fails_the_restore(fault: str, mounted: tuple[subprocess.Popen[bytes], Path, Path, bytes],
                                          tmp_path: Path) -> None:
    proc, mnt, status, data = mounted
    if fault == "shifted":  # a receiver that lost the first byte: every byte after is one place early
        feed(proc, data[1:], close=True)
    elif fault == "cut":  # the stream ends in the middle of the first volume
        feed(proc, data[:len(data) // 2], close=True)
    else:  # the stream stops, the pipe stays open
        feed(proc, data[:2 * MiB], close=False)
    r, target = restore_from(mnt, tmp_path)
    assert r.returncode == 20, r.stderr
    assert no_table(target)
    why = status.read_text()
    assert {"shifted": "out of step", "cut": "the stream ended at byte", "stalled": "stalled"}[fault] in why, why


def test_the_right_stream_restores(mounted: tuple[subprocess.Popen[bytes], Path, Path, bytes], folder: Path,
                                   tmp_path: Path) -> None:
    proc, mnt, status, data = mounted
    feed(proc, data, close=True)
    r, target = restore_from(mnt, tmp_path)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref.img"
    with open(ref, "wb") as f:
        f.truncate(96 * MiB)
    r = run_rescue("restore", str(folder), str(ref), "--yes")
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == ref.read_bytes()
    assert not os.path.exists(status)
