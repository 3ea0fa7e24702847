#!/usr/bin/env python3
"""Restore from a backup folder on the network, side by side with `cp` of the same files from that share.

Issue 16 asks that reading images over the network streams with bounded memory, and that a restore
from a share be measured against the plain copy of the image's volume files from the same share, in
one run. The servers are the tests' own (tests/remote/servers.py: OpenSSH's sshd, SeaweedFS's S3
gateway), in a network namespace this script creates, listening on 127.0.0.1 there only.

For each backend: one backup of a deterministic source disk (a mix of incompressible, text-like and
zero blocks) into the remote folder, then ``--rounds`` interleaved rounds of
  - ``cp``: the client mounts the share as the CLI does (sshfs / rclone mount, same read-ahead) and
    copies the image's files into a local folder, then ``sync`` (the floor: the bytes the restore must
    fetch, fetched by the simplest reader, made durable);
  - ``restore``: ``rescue restore URL TARGET --yes`` onto a sparse file of the disk's size (it writes
    with direct I/O and reads every write back, and waits for that before it exits).
Each keeps its best round; the ratio restore/cp is printed with the peak RSS of the restore (GNU time).
Run as root: ``bench/run.sh --remote [--size 1024] [--rounds 2] [--backends sftp,s3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tests.remote.servers import Netns, Seaweed, Sshd  # noqa: E402  (run.sh puts the checkout on PYTHONPATH)
from tests.scale.peak import measure  # noqa: E402

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
# rclone's read-ahead as the CLI mounts S3 (core/remote/s3.py BUFFER): the cp floor reads the same way.
S3_BUFFER = "4M"


def source_disk(path: Path, mib: int, seed: int) -> None:
    """``mib`` MiB: a third incompressible, a third text-like (compresses ~3x), a third zeros, by MiB."""
    rnd = random.Random(seed)
    words = [rnd.randbytes(rnd.randint(2, 9)).hex().encode() for _ in range(4096)]
    with open(path, "wb") as f:
        for i in range(mib):
            kind = i % 3
            if kind == 0:
                f.write(rnd.randbytes(MiB))
            elif kind == 1:
                block = bytearray()
                while len(block) < MiB:
                    block += rnd.choice(words) + b" "
                f.write(bytes(block[:MiB]))
            else:
                f.write(bytes(MiB))


def rescue_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rescue", *args]


class Share:
    """One backend: its server, how the CLI names the folder, and a plain mount of it for `cp`."""

    def __init__(self, kind: str, ns: Netns, work: Path) -> None:
        self.kind, self.ns, self.work = kind, ns, work
        self.creds = work / "credentials"
        self.server: Sshd | Seaweed
        if kind == "sftp":
            self.server = Sshd(ns, work / "sshd")
            self.root = work / "srv"
            self.root.mkdir()
            self.creds.write_text(f"identity = {self.server.work}/user_key\n")
        else:
            self.server = Seaweed(ns, work / "weed")
            self.creds.write_text(f"access_key_id = {Seaweed.ACCESS_KEY}\n"
                                  f"secret_access_key = {self.server.secret}\n")
        os.chmod(self.creds, 0o600)
        self.home = work / "home"
        self.home.mkdir()

    def url(self) -> str:
        if self.kind == "sftp":
            return f"sftp://root@127.0.0.1:{Sshd.PORT}{self.root}/pc"
        return "s3://bench/pc"

    def opts(self) -> list[str]:
        if isinstance(self.server, Sshd):
            return ["--credentials-file", str(self.creds), "--accept-host-key", self.server.fingerprint]
        return ["--credentials-file", str(self.creds), "--s3-endpoint", self.server.endpoint]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "PYTHONPATH": str(ROOT)}

    def mount(self, at: Path) -> Path:
        """The share mounted by the same client the CLI uses; the image folder in it."""
        at.mkdir(parents=True, exist_ok=True)
        if isinstance(self.server, Sshd):
            self.ns.run(["sshfs", f"root@127.0.0.1:{self.root}", str(at), "-p", str(Sshd.PORT), "-o",
                         f"IdentityFile={self.server.work}/user_key,StrictHostKeyChecking=no,"
                         "UserKnownHostsFile=/dev/null,ro"], check=True)
            return at / "pc"
        conf = self.server.work / "rclone.conf"
        self.server.rclone("lsf", "w:bench")  # writes the config file the test client uses
        # (rclone's daemon keeps inherited pipes open: its output goes nowhere)
        subprocess.run(self.ns.cmd(["rclone", "--config", str(conf), "mount", "w:bench", str(at), "--daemon",
                                    "--read-only", "--vfs-cache-mode", "minimal", "--buffer-size", S3_BUFFER]),
                       check=True, env={**os.environ, "AWS_CA_BUNDLE": ""}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.ismount(at):
            if time.monotonic() > deadline:
                raise RuntimeError("rclone mount did not come up")
            time.sleep(0.2)
        return at / "pc"

    def close(self) -> None:
        self.server.kill()


def unmount(at: Path) -> None:
    subprocess.run(["fusermount3", "-uz", str(at)], check=False, capture_output=True)


def timed_cp(share: Share, image: str, work: Path) -> tuple[float, int]:
    """Wall seconds to copy the image's files from the share into a local folder and sync them."""
    mnt, dest = work / "cp-mnt", work / "cp-out"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    folder = share.mount(mnt)
    try:
        files = sorted(str(p) for p in folder.iterdir() if p.name.startswith(image))
        subprocess.run(["sync"], check=True)
        m = measure(["sh", "-c", 'cp "$@" "$0" && sync', str(dest), *files])
        if m.code != 0:
            raise RuntimeError(f"cp failed: {m.stderr}")
        size = sum(p.stat().st_size for p in dest.iterdir())
        return m.wall, size
    finally:
        unmount(mnt)
        shutil.rmtree(dest, ignore_errors=True)


def timed_restore(share: Share, size: int, work: Path) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds of ``rescue restore`` from the share."""
    target = work / "target.img"
    target.unlink(missing_ok=True)
    with open(target, "wb") as f:
        f.truncate(size)
    subprocess.run(["sync"], check=True)
    m = measure(share.ns.cmd(rescue_argv("restore", share.url(), str(target), "--yes", *share.opts())),
                env=share.env(), cwd=str(ROOT))
    if m.code != 0:
        raise RuntimeError(f"restore failed ({m.code}): {m.stderr}")
    target.unlink()
    return m.wall, m.peak_rss, m.cpu


def run_backend(kind: str, src: Path, rounds: int, work: Path) -> dict[str, object]:
    ns = Netns()
    share: Share | None = None
    try:
        share = Share(kind, ns, work)
        b = subprocess.run(ns.cmd(rescue_argv("backup", str(src), share.url(), "--json", *share.opts())),
                           capture_output=True, text=True, env=share.env(), cwd=ROOT)
        if b.returncode != 0:
            raise RuntimeError(f"backup to {kind} failed: {b.stderr}")
        image = json.loads(b.stdout)["id"]
        cps, restores = [], []
        for _ in range(rounds):  # interleaved: both see the same load
            cps.append(timed_cp(share, image, work))
            restores.append(timed_restore(share, src.stat().st_size, work))
        cp_wall, stored = min(cps)
        best = min(restores)
        return {"backend": kind, "stored_mib": stored / MiB, "cp_s": [round(c[0], 2) for c in cps],
                "restore_s": [round(r[0], 2) for r in restores], "ratio": best[0] / cp_wall,
                "restore_peak_mib": max(r[1] for r in restores) / MiB, "restore_cpu_s": best[2]}
    finally:
        if share is not None:
            share.close()
        ns.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="source disk size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="sftp,s3")
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        src = work / "source.img"
        source_disk(src, a.size, a.seed)
        load = os.getloadavg()[0]
        rows = []
        for kind in a.backends.split(","):
            (work / kind).mkdir()
            rows.append(run_backend(kind, src, a.rounds, work / kind))
    print(f"## Restore from a network folder ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{a.size} MiB source, load before {load:.1f})\n")
    print("| backend | stored MiB | cp + sync s (rounds) | restore s (rounds) | restore / cp | restore peak RSS MiB |")
    print("|---|---:|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['stored_mib']:.0f} | {r['cp_s']} | {r['restore_s']} | "
              f"**{r['ratio']:.2f}x** | {r['restore_peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
