"""`rescue net`: the network links, their addresses, the default routes and the DNS servers."""

from __future__ import annotations

from dataclasses import asdict

import click

from core.platform.network import Link, network

from ..output import emit_json, say


def _describe(link: Link) -> str:
    state = link.state
    if link.carrier is not None:
        state += ", cable in" if link.carrier else ", no cable"
    speed = f"{link.speed_mbps} Mb/s" if link.speed_mbps else ""
    facts = [link.mac, state, link.driver or "no driver", speed, link.bus or "virtual",
             "wireless" if link.wireless else ""]
    return f"{link.name}: " + ", ".join(f for f in facts if f)


@click.command("net")
@click.option("--json", "as_json", is_flag=True,
              help="Print the links, addresses, routes and DNS servers as JSON.")
def command(as_json: bool) -> int:
    """Show the network: each link (MAC address, state and cable, driver, speed, bus: pci, usb,
    virtio ...) with its addresses, the default routes and the DNS servers. On the rescue media, also
    how each wired link was set up at boot (DHCP lease or rescue.net= static address)."""
    net = network()
    if as_json:
        emit_json({"links": [asdict(link) for link in net.links],
                   "default_routes": [asdict(r) for r in net.default_routes], "dns": net.dns})
        return 0
    if not net.links:
        say("no network link (no driver for the network card, or none in this machine)")
    for link in net.links:
        say(_describe(link))
        if link.configured:
            say(f"set up at boot: {link.configured}", indent="    ")
        for a in link.addresses:
            say(f"{a.address}/{a.prefix}" + ("" if a.scope == "global" else f" ({a.scope})"), indent="    ")
    for r in net.default_routes:
        say(f"default route ({r.family}): {r.gateway} on {r.link}")
    say("DNS servers: " + (", ".join(net.dns) if net.dns else "none"))
    return 0
