"""The scale run: a full backup of a synthetic disk, an incremental after ~1 % changed, and a merge,
each a fresh `rescue` process measured by tests/scale/peak.py. Shared by tests/scale and bench/scale.py.

Per step it records wall and CPU time, the command's own peak RSS, the bytes the source served (from
the FUSE server: what the engine really read), the image's bytes on disk, its ``.manifest`` file's
size and the engine's own figures from ``--json``.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash.crashlib import image_files, rescue_env
from tests.crash.fuseshim import mounted_shim
from tests.scale.peak import measure
from tests.scale.synthdisk import Layout

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER = Path(__file__).resolve().parent / "synth_fuse.py"


@dataclass
class Step:
    name: str
    wall: float
    cpu: float
    peak_rss: int
    read_bytes: int | None  # served by the source; None: the step reads no source
    image_id: str
    image_bytes: int
    manifest_bytes: int
    result: dict[str, object] = field(default_factory=dict)

    @property
    def stored_bytes(self) -> int:
        v = self.result.get("stored_bytes")
        return v if isinstance(v, int) else 0


def _image_sizes(folder: Path, image_id: str) -> tuple[int, int]:
    """(all files of the image, its manifest) in bytes."""
    sizes = {name: (folder / name).stat().st_size for name in image_files(folder, image_id)}
    return sum(sizes.values()), sizes.get(f"{image_id}.manifest", 0)


def _rescue(name: str, argv: list[str], folder: Path, read_bytes: int | None = None) -> Step:
    m = measure([sys.executable, "-m", "rescue", *argv, "--json"], env=rescue_env(), cwd=str(ROOT))
    if m.code != 0:
        raise RuntimeError(f"{name}: rescue exited {m.code}: {m.stderr.strip()[-500:]}")
    result = json.loads(m.stdout)
    image_id = str(result.get("id", result.get("image")))
    total, manifest = _image_sizes(folder, image_id)
    return Step(name, m.wall, m.cpu, m.peak_rss, read_bytes, image_id, total, manifest, result)


def _backup(name: str, layout_file: Path, generation: int, folder: Path, mnt: Path, extra: list[str]) -> Step:
    stats = mnt.parent / f"served-{generation}.json"
    with mounted_shim(SERVER, [str(layout_file), str(generation), str(stats)], mnt) as disk:
        step = _rescue(name, ["backup", str(disk), str(folder), *extra], folder)
    # The server writes its count when unmounted, which mounted_shim waited for.
    step.read_bytes = int(json.loads(stats.read_text())["served_bytes"])
    return step


def run(layout: Layout, work: Path) -> list[Step]:
    """Full (generation 0), incremental (generation 1), verify and restore of that point (onto a
    sparse file of the disk's size), merge; the backup folder is made fresh in ``work``."""
    folder = work / "backups"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    layout_file = work / "layout.json"
    layout.save(layout_file)
    mnt = work / "mnt"
    full = _backup("full", layout_file, 0, folder, mnt, [])
    inc = _backup("incremental", layout_file, 1, folder, mnt, ["--incremental"])
    checked = _rescue("verify", ["verify", str(folder), "--image", inc.image_id], folder)
    target = work / "target.img"
    with open(target, "wb") as f:
        f.truncate(layout.size)
    try:
        restored = _rescue("restore", ["restore", str(folder), str(target), "--image", inc.image_id, "--yes"],
                           folder)
    finally:
        target.unlink()
    merged = _rescue("merge", ["merge", str(folder), "--image", inc.image_id], folder)
    return [full, inc, checked, restored, merged]
