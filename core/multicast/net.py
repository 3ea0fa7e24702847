"""The network facts a session needs, from `ip -j` (iproute2) through the one tool runner.

The server's interface and its IPv4 address (the control channel binds to that address only), whether
a default route leaves through it (then it is likely an office network, where a second DHCP server is
an outage: refused unless the admin says otherwise), and, on a client, the interface that reaches the
server and its MAC address (what the server's table names a PC by).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UsageError
from ..platform.tools import run


def _ip(args: list[str], what: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *args], what, error=lambda d: UsageError(detail=d), timeout=30)
    data = json.loads(out or "[]")
    return data if isinstance(data, list) else []


def interface_address(interface: str) -> str:
    """The interface's first IPv4 address; `UsageError` when it has none or does not exist."""
    for link in _ip(["-4", "addr", "show", "dev", interface], f"reading the addresses of {interface}"):
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and a.get("local"):
                return str(a["local"])
    raise UsageError(detail=f"interface {interface} has no IPv4 address: give it one (ip addr add ...)")


def default_routes_via(interface: str) -> list[str]:
    """The default routes (IPv4 and IPv6) that leave through ``interface``, as text."""
    out = []
    for family in ("-4", "-6"):
        for r in _ip([family, "route", "show", "default"], "reading the routing table"):
            if r.get("dev") == interface:
                out.append(f"default via {r.get('gateway', '?')} dev {interface}")
    return out


def route_to(host: str) -> str:
    """The interface this machine reaches ``host`` through."""
    for r in _ip(["route", "get", host], f"finding the route to {host}"):
        if r.get("dev"):
            return str(r["dev"])
    raise UsageError(detail=f"no route to the session's server {host}")


def mac_address(interface: str) -> str:
    try:
        with open(f"/sys/class/net/{interface}/address") as f:
            return f.read().strip()
    except OSError:
        return ""
