"""`rescue net` reads the kernel's view of the network: inside a network namespace the test creates (a
veth pair with IPv4 and IPv6 addresses and default routes through the other end), what it prints is
what the test configured, with `ip`. The media's DHCP and rescue.net= are shown in a VM by
tests/media/test_network.py."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from typing import Iterator

import pytest

from tests.conftest import need_root_tools
from tests.crash.crashlib import ROOT, rescue_env

pytestmark = [pytest.mark.root]


@pytest.fixture
def netns() -> Iterator[str]:
    need_root_tools("ip")
    name = f"rescue-net-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["addr", "add", "10.77.0.2/24", "dev", "v0"],
                    ["-6", "addr", "add", "fd77::2/64", "dev", "v0", "nodad"],
                    ["link", "set", "v0", "up"], ["link", "set", "v1", "up"],
                    ["route", "add", "default", "via", "10.77.0.1"],
                    ["-6", "route", "add", "default", "via", "fd77::1", "dev", "v0"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def rescue_net(ns: str, *args: str) -> str:
    # `ip netns exec`, not nsenter: it also mounts a sysfs of the namespace (/sys/class/net shows the
    # links of the namespace that mounted sysfs)
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "rescue", "net", *args],
                       capture_output=True, text=True, env=rescue_env(), cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_links_addresses_and_routes_as_configured(netns: str) -> None:
    shown = json.loads(rescue_net(netns, "--json"))
    links = {link["name"]: link for link in shown["links"]}
    assert set(links) == {"v0", "v1"}  # loopback is left out
    v0 = links["v0"]
    mac = subprocess.run(["ip", "-n", netns, "-br", "link", "show", "v0"], capture_output=True, text=True,
                         check=True).stdout.split()[2]
    assert v0["mac"] == mac and v0["state"] == "up" and v0["carrier"] is True
    assert v0["bus"] is None and v0["configured"] is None  # a veth has no device; not set up by the media
    addrs = {(a["family"], a["address"], a["prefix"], a["scope"]) for a in v0["addresses"]}
    assert {("ipv4", "10.77.0.2", 24, "global"), ("ipv6", "fd77::2", 64, "global")} <= addrs
    assert any(a[0] == "ipv6" and a[3] == "link" for a in addrs)  # the kernel's own fe80:: address
    assert {(r["family"], r["gateway"], r["link"]) for r in shown["default_routes"]} == {
        ("ipv4", "10.77.0.1", "v0"), ("ipv6", "fd77::1", "v0")}
    assert isinstance(shown["dns"], list)

    text = rescue_net(netns)
    assert f"v0: {mac}, up, cable in" in text and "10.77.0.2/24" in text and "fd77::2/64" in text
    assert "default route (ipv4): 10.77.0.1 on v0" in text and "DNS servers:" in text
