"""The network facts a session needs, from the platform layer (`core.platform.network`: the kernel's own
lists, so the rescue media need no iproute2).

The server's interface and its IPv4 address (the control channel binds to that address only), whether
a default route leaves through it (then it is likely an office network, where a second DHCP server is
an outage: refused unless the admin says otherwise), and, on a client, the interface that reaches the
server and its MAC address (what the server's table names a PC by).
"""

from __future__ import annotations

import socket

from ..errors import SessionError, UsageError
from ..platform import network


def interface_address(interface: str) -> str:
    """The interface's first IPv4 address; `UsageError` when it has none or does not exist."""
    for a in network.addresses().get(interface, []):
        if a.family == "ipv4":
            return a.address
    raise UsageError(detail=f"interface {interface} has no IPv4 address (or does not exist): give it one")


def default_routes_via(interface: str) -> list[str]:
    """The default routes (IPv4 and IPv6) that leave through ``interface``, as text."""
    return [f"default via {r.gateway} dev {r.link}" for r in network.default_routes() if r.link == interface]


def route_to(host: str) -> str:
    """The interface this machine reaches ``host`` through (the kernel's choice of source address)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))  # a UDP connect sends nothing: it only asks the routing table
            source = s.getsockname()[0]
    except OSError as e:
        raise SessionError(detail=f"no route to the session's server {host}: {e.strerror or e}") from None
    for name, addrs in network.addresses().items():
        if any(a.address == source for a in addrs):
            return name
    raise SessionError(detail=f"no interface holds {source}, the address that reaches {host}")


def mac_address(interface: str) -> str:
    for link in network.network().links:
        if link.name == interface:
            return link.mac
    return ""
