"""A small network for the session tests: a bridge in a namespace of its own, and hosts on it.

Every host is a network namespace (`tests.remote.servers.Netns`) with one veth, ``eth0``, whose peer is
a port of the bridge; addresses are in 10.77.0.0/24, which exists only inside these namespaces, and no
namespace has a default route unless a test adds one. Disks are loop devices over blank files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.remote.servers import Netns

SUBNET = "10.77.0"


class Lab:
    def __init__(self) -> None:
        self.hub = Netns()
        self.hosts: list[Netns] = []
        self.loops: list[str] = []
        self._ip(self.hub, "link", "add", "br0", "type", "bridge")
        self._ip(self.hub, "link", "set", "br0", "up")

    @staticmethod
    def _ip(ns: Netns, *args: str) -> None:
        r = ns.run(["ip", *args])
        assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"

    def host(self) -> tuple[Netns, str]:
        """A new host on the bridge and its address (the first one is .1: the server)."""
        ns = Netns()
        n = len(self.hosts) + 1
        port = f"p{n}"
        self._ip(self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
        self._ip(self.hub, "link", "set", port, "master", "br0", "up")
        address = f"{SUBNET}.{n}"
        self._ip(ns, "addr", "add", f"{address}/24", "brd", "+", "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        self.hosts.append(ns)
        return ns, address

    def lose(self, ns: Netns, percent: int, source: str | None = None) -> None:
        """Drop ``percent`` % of the UDP packets ``ns`` receives (from ``source`` only, if given), at random
        (nftables' numgen: this machine's kernel has no netem qdisc). Only arriving packets are dropped,
        as a lossy link loses them: a packet dropped on its way out fails the sender's sendto (EPERM),
        which no real link does and which udp-receiver gives up on."""
        match = ["ip", "saddr", source] if source else []
        for rule in (["add", "table", "inet", "loss"],
                     ["add", "chain", "inet", "loss", "input", "{ type filter hook input priority 0; }"],
                     ["add", "rule", "inet", "loss", "input", *match, "meta", "l4proto", "udp", "numgen", "random",
                      "mod", "100", "<", str(percent), "drop"]):
            r = ns.run(["nft", *rule])
            assert r.returncode == 0, r.stderr

    def disk(self, path: Path, size: int) -> str:
        """A blank disk of ``size`` bytes: a loop device over a sparse file."""
        with open(path, "wb") as f:
            f.truncate(size)
        dev = subprocess.run(["losetup", "-f", "--show", str(path)], check=True, capture_output=True,
                             text=True).stdout.strip()
        self.loops.append(dev)
        return dev

    def get(self, ns: Netns, url: str) -> dict[str, object]:
        code = f"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
        r = ns.run([sys.executable, "-c", code])
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert isinstance(out, dict)
        return out

    def close(self) -> None:
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev], check=False)
        for ns in [*self.hosts, self.hub]:
            ns.close()
