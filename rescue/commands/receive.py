"""`rescue receive SESSION`: one PC's part of `rescue serve` (the network-booted media run it).

SESSION is what `rescue serve` prints (ADDR:PORT/DIGEST); the media's init takes it from the kernel
command line (`rescue.session=`). The disk is chosen by the session's rule, never asked for: the PC
may have no one in front of it. Exit codes are a restore's (40 refused, 20 integrity, ...) or 50 when
the session's stream or server was lost.
"""

from __future__ import annotations

import click

from core.multicast.client import ReceiveOptions, receive

from ..context import password_source, running
from ..output import emit_json, human, say


@click.command("receive")
@click.argument("session")
@click.option("--disks", default=None, help="Comma-separated disks the rule may choose from (default: this "
              "machine's own disks: not USB, not removable, nothing mounted).")
@click.option("--stall", type=click.FloatRange(5), default=120.0, show_default=True,
              help="Seconds without data after which the stream counts as lost.")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="Password of an encrypted image (or set RESCUE_PASSWORD; asked on a terminal otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(session: str, disks: str | None, stall: float, password_file: str | None, as_json: bool) -> int:
    """Join a restore session and restore its image onto the disk the session's rule picks."""
    opts = ReceiveOptions(disks=[d for d in disks.split(",") if d] if disks else None, stall=stall)
    with running(not as_json) as (progress, _):
        result = receive(session, password_source(password_file), opts, progress)
    if as_json:
        emit_json(result.as_json())
    else:
        r = result.restore
        say(f"restored image {r.image_id} onto {result.disk.path} ({result.disk.model or 'no model'}) by "
            f"{result.mode}: {human(r.written_bytes)} written and verified in {r.seconds:.1f} s")
    return 0
