"""Small source disks for image-format tests, built without root with the real NTFS tools.

`small_disk()` makes an MBR disk file with sfdisk: partition 1 holds a 34 MiB NTFS volume made by mkntfs
with a few files copied in by ntfscp (both work on a plain file, no mount: used clusters come from its
$Bitmap), partition 2 an unknown type with scattered random and zero blocks (imaged raw), and a few
non-zero bytes in the post-MBR gap.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


MiB = 1 << 20


VOLUME_SECTORS = 70144  # 34.25 MiB, the size of a small Windows-formatted data volume


def ntfs_volume(seed: int) -> bytes:
    """A fresh NTFS volume (Windows' geometry: 512-byte sectors, 4 KiB clusters, hidden sectors = the
    partition start of ``small_disk``) holding text, random and zero-heavy files from ``seed``."""
    for tool in ("sfdisk", "mkntfs", "ntfscp"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: scripts/setup.sh installs it")
    rnd = random.Random(f"ntfs-{seed}")
    with tempfile.TemporaryDirectory(prefix="small-ntfs-") as tmp:
        vol = Path(tmp) / "vol"
        with open(vol, "wb") as f:
            f.truncate(VOLUME_SECTORS * 512)
        subprocess.run(["mkntfs", "-F", "-q", "-Q", "-s", "512", "-c", "4096", "-p", "2048", "-H", "255", "-S", "63",
                        "-L", "Data", str(vol)], check=True, capture_output=True)
        files = {"notes.txt": b"".join(b"line %d of the notes\r\n" % i for i in range(20000)),
                 "photo.jpg": rnd.randbytes(3 * MiB),
                 "disk.iso": bytes(MiB) + rnd.randbytes(256 * 1024) + bytes(MiB),
                 "tiny.ini": b"[settings]\r\nvalue=1\r\n"}
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            subprocess.run(["ntfscp", "-q", str(vol), str(Path(tmp) / name), name], check=True, capture_output=True)
        return vol.read_bytes()


def small_disk(path: Path, seed: int = 1) -> Path:
    vol = ntfs_volume(seed)
    size = 96 * MiB
    with open(path, "wb") as f:
        f.truncate(size)
    p1_sectors = (len(vol) + 511) // 512
    script = (f"label: dos\nlabel-id: 0x1234abcd\nstart=2048, size={p1_sectors}, type=7, bootable\n"
              f"start={2048 + ((p1_sectors + 2047) // 2048) * 2048}, type=83\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(), check=True)
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True, capture_output=True, text=True).stdout
    import json
    parts = json.loads(out)["partitiontable"]["partitions"]
    rnd = random.Random(seed)
    with open(path, "r+b") as f:
        f.seek(parts[0]["start"] * 512)
        f.write(vol)
        p2 = parts[1]["start"] * 512
        p2_size = parts[1]["size"] * 512
        for i in range(0, p2_size, 256 * 1024):
            if rnd.random() < 0.4:
                f.seek(p2 + i)
                f.write(rnd.randbytes(192 * 1024) if rnd.random() < 0.6 else b"text data " * 6000)
        f.seek(3 * 512)
        f.write(b"post-MBR gap bytes")
    return path


def run_rescue(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (a separate process): exit code, stdout, stderr."""
    e = dict(os.environ)
    e.pop("RESCUE_PASSWORD", None)
    if env:
        e.update(env)
    root = Path(__file__).resolve().parent.parent
    e["PYTHONPATH"] = str(root) + os.pathsep + e.get("PYTHONPATH", "")
    # RESCUE_EXE runs the same tests against another build of the CLI (the PyInstaller-frozen binary
    # that goes on the rescue media: tests/media/test_frozen.py).
    exe = os.environ.get("RESCUE_EXE")
    cmd = [exe] if exe else [sys.executable, "-m", "rescue"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=e,
                          input=input.decode() if input else None, cwd=root, timeout=600)


def slow_to_compress(path: Path) -> Path:
    """``path`` (a `small_disk`) with 54 MiB of word-like text in its raw partition: slow to compress
    at the smallest setting, so a backup of it runs long enough to be cancelled on a screen."""
    with open(path, "r+b") as f:
        rnd = random.Random(3)
        words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
                 for _ in range(4096)]
        f.seek(40 * MiB)
        f.write(b" ".join(rnd.choice(words) for _ in range(9 * MiB // 6))[:54 * MiB])
    return path
