"""Restore sessions on this machine: the rate's ceiling, and one session's time and rate.

Run as root: ``.venv/bin/python bench/multicast.py [--mib 1024]``. Everything runs in network namespaces
on a bridge (tests/multicast/netlab.py), never on this machine's own network:

1. ceiling: udp-sender sends a file of MIB MiB (in the page cache) to one udp-receiver that writes
   nothing (``--file /dev/null``): what udpcast itself moves over the bridge on these cores;
2. session: a disk with MIB MiB of incompressible data is backed up, then `rescue serve` restores it
   onto two PCs at once (`rescue receive` on two blank loop devices), from the server's start to its
   end; the rate is the stream's bytes over that time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.multicast.netlab import Lab  # noqa: E402
from tests.remote.servers import Netns  # noqa: E402

MiB = 1 << 20


def ceiling(lab: Lab, srv: Netns, client: Netns, data: Path) -> float:
    recv = subprocess.Popen(client.cmd(["udp-receiver", "--interface", "eth0", "--portbase", "9720", "--nokbd",
                                        "--file", "/dev/null"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    t0 = time.monotonic()
    subprocess.run(srv.cmd(["udp-sender", "--interface", "eth0", "--portbase", "9720", "--min-receivers", "1",
                            "--nokbd", "--file", str(data)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=600)
    recv.wait(timeout=60)
    return time.monotonic() - t0


def make_disk(path: Path, mib: int) -> None:
    """An MBR disk with one partition of unknown type full of random bytes (stored as they are)."""
    with open(path, "wb") as f:
        f.truncate((mib + 2) * MiB)
    subprocess.run(["sfdisk", "-q", str(path)], input=b"label: dos\nstart=2048, type=83\n", check=True)
    with open(path, "r+b") as f:
        f.seek(MiB)
        for _ in range(mib):
            f.write(os.urandom(MiB))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="bench-mc-") as tmp:
        work = Path(tmp)
        disk = work / "src.img"
        make_disk(disk, a.mib)
        lab = Lab()
        try:
            srv, addr = lab.host()
            c1, _ = lab.host()
            c2, _ = lab.host()
            seconds = ceiling(lab, srv, c1, disk)
            size = disk.stat().st_size
            print(f"ceiling: {size / MiB:.0f} MiB in {seconds:.1f} s = {size * 8 / seconds / 1e6:.0f} Mbit/s")
            r = subprocess.run([sys.executable, "-m", "rescue", "backup", str(disk), str(work / "bk")], env=env,
                               cwd=ROOT, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            manifest = next((work / "bk").glob("*.manifest"))
            session = f"{addr}:8090/{manifest.read_bytes()[-32:].hex()}"
            targets = [lab.disk(work / f"t{i}.img", size) for i in range(2)]
            t0 = time.monotonic()
            server = srv.start_rescue("serve", str(work / "bk"), "--interface", "eth0", "--clients", "2", "--json")
            time.sleep(1)
            clients = [ns.start_rescue("receive", session, "--disks", t, "--json") for ns, t in zip((c1, c2), targets)]
            for c in clients:
                _, err = c.communicate(timeout=3600)
                assert c.returncode == 0, err
            out, err = server.communicate(timeout=600)
            assert server.returncode == 0, err
            seconds = time.monotonic() - t0
            stream = json.loads(out)["stream_bytes"]
            print(f"session: 2 PCs, {stream / MiB:.0f} MiB stream in {seconds:.1f} s = "
                  f"{stream * 8 / seconds / 1e6:.0f} Mbit/s (each PC restored and read back its disk)")
        finally:
            lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
