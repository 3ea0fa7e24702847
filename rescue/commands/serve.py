"""`rescue serve FOLDER`: restore one image onto a room of PCs at once (FORMAT.md "Multicast sessions").

Prints the session address to give the PCs (the network boot puts it on their kernel command line),
then one line per client change (joined, refused, done, failed) and a progress line now and then;
exits 0 only when every client that joined succeeded, else 50 naming each one that did not.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Any, Iterator

import click

from core.multicast.server import Options, Session
from core.multicast.session import DEFAULT_PORT, DEFAULT_PORTBASE
from core.progress import Event, Progress

from ..context import with_password
from ..output import emit_json, human, say

PROGRESS_EVERY = 10.0  # seconds between a client's progress lines (its joins and results show at once)


class _Table:
    """The live table, one line per change: client, MAC and address, disk, state, progress."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.last: dict[int, tuple[str, float]] = {}

    def __call__(self, e: Event) -> None:
        if not self.show:
            return
        if e.stage != "client":
            if e.message:
                click.echo(f"rescue: {e.message}", err=True)
            return
        c: Any = e.extra["client"]
        state, now = str(c["state"]), time.monotonic()
        prev = self.last.get(c["client"])
        if prev is not None and prev[0] == state and now - prev[1] < PROGRESS_EVERY:
            return
        self.last[c["client"]] = (state, now)
        disk = c["disk"].get("path", "?") + (f" ({c['disk'].get('model')})" if c["disk"].get("model") else "")
        pct = f" {100 * c['done'] // c['total']}%" if c["total"] else ""
        why = f": {c['error']}" if c["error"] else ""
        click.echo(f"  client {c['client']} {c['mac'] or '?'} {c['address'] or '?'} [{c['mode']}] disk {disk}: "
                   f"{state}{pct}{why}", err=True)


@contextmanager
def cancel_on_signals(progress: Progress) -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the session at its next safe point (`core.progress`)."""
    old = {s: signal.signal(s, lambda signum, frame: progress.cancel()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@click.command("serve")
@click.argument("folder")
@click.option("--image", "image_id", default=None, help="Image id (default: the latest complete image).")
@click.option("--interface", required=True, help="Network interface the PCs are on (an isolated network).")
@click.option("--clients", type=click.IntRange(1), default=None,
              help="Start sending once this many PCs have joined (or --wait has passed).")
@click.option("--wait", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds to wait for PCs before sending to those that joined.")
@click.option("--target", default="largest", show_default=True,
              help="Which disk each PC restores onto: largest, only, or model=TEXT.")
@click.option("--force", is_flag=True, help="Restore onto a chosen disk that holds something else.")
@click.option("--max-bitrate", default=None, help="Cap the multicast rate (udp-sender's, e.g. 600m).")
@click.option("--unicast", is_flag=True, help="Send to every PC over HTTP instead of multicast.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port of the session's control channel.")
@click.option("--portbase", type=click.IntRange(1, 65533), default=DEFAULT_PORTBASE, show_default=True,
              help="UDP port base of the multicast transfer.")
@click.option("--stall", type=click.FloatRange(5), default=120.0, show_default=True,
              help="Seconds of silence after which a PC counts as lost.")
@click.option("--i-know-this-network", "allow_default_route", is_flag=True,
              help="Serve on an interface that carries the default route.")
@click.option("--boot", "boot_tree", type=click.Path(file_okay=False, exists=True), default=None,
              help="Network-boot the PCs from this tree (rescue-build netboot): PXE and TFTP by dnsmasq.")
@click.option("--dhcp-range", default=None, help="With --boot: be the DHCP server for FIRST,LAST (an isolated "
              "network; UEFI PCs need it); without it dnsmasq is a proxy DHCP beside the network's own.")
@click.option("--append", default="", help="With --boot: more kernel arguments for the PCs (console=ttyS0 ...).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image, to check it here (it is never sent: each PC asks).")
@click.option("--json", "as_json", is_flag=True, help="Print the session's result as JSON.")
def command(folder: str, image_id: str | None, interface: str, clients: int | None, wait: float, target: str,
            force: bool, max_bitrate: str | None, unicast: bool, port: int, portbase: int, stall: float,
            allow_default_route: bool, boot_tree: str | None, dhcp_range: str | None, append: str,
            password_file: str | None, as_json: bool) -> int:
    """Restore an image from FOLDER onto many PCs at once, over the network.

    Each PC runs `rescue receive SESSION` (the network-booted media run it for you): it picks its disk
    by --target, receives the image by multicast (or over HTTP when it joins late), checks every block
    as a restore does, and reports. The password of an encrypted image never crosses the network.
    """
    opts = Options(interface=interface, port=port, portbase=portbase, clients=clients, wait=wait, target=target,
                   force=force, max_bitrate=max_bitrate, unicast=unicast, stall=stall,
                   allow_default_route=allow_default_route, boot=boot_tree, dhcp_range=dhcp_range, append=append)
    progress = Progress(_Table(not as_json))  # the table instead of the one-line progress display
    with cancel_on_signals(progress):
        session = with_password(password_file, lambda pw: Session(folder, image_id, pw, opts, progress))
        if not as_json:
            say(f"session {session.session} (image {session.layout.image}, "
                f"{human(session.layout.stream_length)}): PCs join with rescue.session={session.session}", err=True)
        result = session.run()
    if as_json:
        emit_json(result.as_json())
    else:
        say(f"all {len(result.clients)} clients restored image {result.image} in {result.seconds:.1f} s")
    return 0
