"""An ``nfs://host[:port]/export/path`` folder through the kernel's NFS client (mount.nfs).

NFS version 4 is tried first, then version 3 (``nolock``: the rescue media run no rpc.statd, and the
folder's own lock file is what keeps two writers apart). The longest leading part of the path that the
server lets us mount is mounted, so a backup's folder that does not exist yet is created below it.
The client sends WRITE then COMMIT for each fsync and at close (close-to-open), and RENAME is one call
the server completes before it answers: what FORMAT.md "Folders on the network" needs for the commit.

``soft`` with ``timeo``/``retrans``: a server that stops answering makes the calls fail (EIO, then exit
11) after about a minute instead of hanging the rescue for ever.
"""

from __future__ import annotations

from ..errors import RemoteAuthError, RemoteError, UsageError
from ..platform import tools
from . import Credentials, Location, RemoteOptions

MOUNT_TIMEOUT = 90
# each call is retried twice, 10 s apart, before it fails (timeo is in tenths of a second)
OPTIONS = "soft,timeo=100,retrans=2,retry=0,proto=tcp"
VERSIONS = (("4", ""), ("3", ",nolock"))


def mount(where: Location, creds: Credentials, options: RemoteOptions, mountpoint: str, work: str) -> str:
    """Mount ``where`` at ``mountpoint``; the folder below it (relative)."""
    if where.user:
        raise UsageError(detail=f"{where.shown}: nfs:// takes no user (the server trusts the machine)")
    parts = where.path.split("/") if where.path else []
    if not parts:
        raise UsageError(detail=f"{where.shown}: nfs://HOST/EXPORT/PATH names no export")
    port = f",port={where.port}" if where.port else ""
    said: list[str] = []  # what each version said about the shortest path (the export itself)
    for cut in range(len(parts), 0, -1):  # the whole path, then its parents down to the export
        remote = f"{where.host}:/{'/'.join(parts[:cut])}"
        said = []
        for version, extra in VERSIONS:
            opts = f"vers={version},{OPTIONS}{port}{extra}"
            o = tools.attempt(["mount.nfs", remote, mountpoint, "-o", opts], timeout=MOUNT_TIMEOUT)
            if o.ok:
                return "/".join(parts[cut:])
            if _gone(o.detail):
                raise RemoteError(path=where.shown, detail=f"cannot reach {where.host}: {o.detail}")
            said.append(f"version {version}: {o.detail.split(': ', 1)[-1]}")
    detail = "; ".join(said) or "no answer"
    if "access denied" in detail or "Permission denied" in detail:
        raise RemoteAuthError(path=where.shown, detail=f"{where.host} refused this machine: {detail}")
    raise RemoteError(path=where.shown, detail=f"cannot mount the NFS export: {detail}")


def _gone(detail: str) -> bool:
    return any(s in detail for s in ("Connection refused", "No route to host", "Network is unreachable",
                                     "timed out", "Connection timed out", "Host is down"))
