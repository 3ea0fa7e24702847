"""The machine's network as the Linux kernel sees it, for `rescue net`.

Links come from sysfs (``/sys/class/net``: MAC address, operational state, carrier, speed, the driver
and the bus of the device behind it), addresses from the kernel itself (an rtnetlink dump: IPv4 and
IPv6 with their prefix lengths), default routes from ``/proc/net/route`` and ``/proc/net/ipv6_route``,
DNS servers from ``/etc/resolv.conf``. On the rescue media, ``/run/rescue-net/LINK`` says how the media
configured a link (linux-live/network: "dhcp" while it asks, "bound ADDR/PREFIX", "static ADDR/PREFIX",
"no lease"). Nothing here changes the network.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

from ..errors import UnsupportedError

SYS_NET = "/sys/class/net"
STATE = "/run/rescue-net"
RESOLV = "/etc/resolv.conf"
# rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)
_RTM_NEWADDR, _RTM_GETADDR, _NLMSG_DONE, _NLMSG_ERROR = 20, 22, 3, 2
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, link index
_RTATTR = struct.Struct("=HH")  # length, type
_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host"}
# a dump of a machine's addresses is a few KiB; a reply this long is not an address dump
_MAX_REPLY = 1 << 22


@dataclass(frozen=True)
class Address:
    family: str  # "ipv4" or "ipv6"
    address: str
    prefix: int
    scope: str  # "global", "link", "host", "site"


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    state: str  # the kernel's operstate: "up", "down", "dormant", "unknown" ...
    carrier: bool | None  # None: the link is down (the kernel does not say)
    driver: str | None
    speed_mbps: int | None  # None when unknown (no carrier, a virtual card)
    bus: str | None  # "pci", "usb", "virtio", "vmbus" ...; None for a virtual link (bridge, tunnel)
    wireless: bool
    configured: str | None  # what the rescue media did with it (/run/rescue-net), None elsewhere
    addresses: list[Address] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    family: str
    gateway: str
    link: str


@dataclass(frozen=True)
class Network:
    links: list[Link]
    default_routes: list[Route]
    dns: list[str]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:  # absent, or the kernel refuses (speed of a link without carrier: EINVAL)
        return None


def _bus(device: str) -> str | None:
    """The bus the link's device hangs off, by its subsystem (a virtio card's is "virtio"; a USB
    adapter's device is a USB interface)."""
    sub = os.path.join(device, "subsystem")
    if not os.path.exists(sub):
        return None
    name = os.path.basename(os.path.realpath(sub))
    return name or None


def _link(name: str, addresses: dict[str, list[Address]]) -> Link:
    base = os.path.join(SYS_NET, name)
    device = os.path.join(base, "device")
    state = _read(os.path.join(base, "operstate")) or "unknown"
    carrier = _read(os.path.join(base, "carrier"))
    speed = _read(os.path.join(base, "speed"))
    driver = os.path.join(device, "driver")
    return Link(
        name=name, mac=_read(os.path.join(base, "address")) or "", state=state,
        carrier=None if carrier not in ("0", "1") else carrier == "1",
        driver=os.path.basename(os.path.realpath(driver)) if os.path.exists(driver) else None,
        speed_mbps=int(speed) if speed and speed.isdigit() and int(speed) > 0 else None,
        bus=_bus(device) if os.path.exists(device) else None,
        wireless=any(os.path.exists(os.path.join(base, n)) for n in ("wireless", "phy80211")),
        configured=_read(os.path.join(STATE, name)),
        addresses=addresses.get(name, []))


def _index_names() -> dict[int, str]:
    return {i: n for i, n in socket.if_nameindex()}


def addresses() -> dict[str, list[Address]]:
    """Every address the kernel holds, by link name (an rtnetlink RTM_GETADDR dump)."""
    names = _index_names()
    out: dict[str, list[Address]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.bind((0, 0))
        request = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        header = _NLMSG.pack(_NLMSG.size + len(request), _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
        s.send(header + request)
        received = 0
        while True:
            data = s.recv(65536)
            received += len(data)
            if not data or received > _MAX_REPLY:
                raise UnsupportedError(detail="the kernel's list of addresses (rtnetlink) did not end")
            at = 0
            while at + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, at)
                if length < _NLMSG.size or at + length > len(data):
                    raise UnsupportedError(detail="the kernel's list of addresses (rtnetlink) is malformed")
                if kind == _NLMSG_DONE:
                    return out
                if kind == _NLMSG_ERROR:
                    raise UnsupportedError(detail="the kernel refused to list the addresses (rtnetlink)")
                if kind == _RTM_NEWADDR:
                    _one_address(data[at + _NLMSG.size:at + length], names, out)
                at += (length + 3) & ~3


def _one_address(msg: bytes, names: dict[int, str], out: dict[str, list[Address]]) -> None:
    if len(msg) < _IFADDRMSG.size:
        return
    family, prefix, _flags, scope, index = _IFADDRMSG.unpack_from(msg)
    attrs: dict[int, bytes] = {}
    at = _IFADDRMSG.size
    while at + _RTATTR.size <= len(msg):
        length, kind = _RTATTR.unpack_from(msg, at)
        if length < _RTATTR.size:
            break
        attrs[kind] = msg[at + _RTATTR.size:at + length]
        at += (length + 3) & ~3
    # IPv4: IFA_LOCAL is the address (IFA_ADDRESS is the far end of a point-to-point link)
    raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return
    kind_name = "ipv4" if family == socket.AF_INET else "ipv6"
    out.setdefault(names.get(index, str(index)), []).append(
        Address(kind_name, socket.inet_ntop(family, raw), prefix, _SCOPES.get(scope, str(scope))))


def default_routes() -> list[Route]:
    """The default routes of the main table, IPv4 then IPv6."""
    routes: list[Route] = []
    for line in (_read("/proc/net/route") or "").splitlines()[1:]:
        f = line.split()
        # destination and mask 0: the default; flags 0x2: through a gateway
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000" and int(f[3], 16) & 0x2:
            gateway = socket.inet_ntoa(struct.pack("<I", int(f[2], 16)))
            routes.append(Route("ipv4", gateway, f[0]))
    for line in (_read("/proc/net/ipv6_route") or "").splitlines():
        f = line.split()
        if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[4] != "0" * 32 and f[9] != "lo":
            routes.append(Route("ipv6", str(ipaddress.IPv6Address(bytes.fromhex(f[4]))), f[9]))
    return routes


def dns_servers() -> list[str]:
    out = []
    for line in (_read(RESOLV) or "").splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver" and f[1] not in out:
            out.append(f[1])
    return out


def network() -> Network:
    """Every link but loopback, with its addresses, and the default routes and DNS servers."""
    try:
        names = sorted(n for n in os.listdir(SYS_NET) if n != "lo")
    except OSError as e:
        raise UnsupportedError(detail=f"{SYS_NET}: {e.strerror}: no network to show") from None
    found = addresses()
    return Network([_link(n, found) for n in names], default_routes(), dns_servers())
