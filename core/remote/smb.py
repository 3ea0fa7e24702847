"""An ``smb://[user@]host[:port]/share/path`` folder through the kernel's SMB client (mount.cifs).

The user and password reach mount.cifs in a ``credentials=`` file created 0600 in the command's 0700
private folder and deleted as soon as the mount returns: never an argument, never in the environment
of a process that lives on. The kernel's client then sends an SMB2 FLUSH for each fsync (the default:
``nostrictsync`` is never given) and renames with SMB2 SET_INFO (FileRenameInformation), which the
server performs as one rename: what FORMAT.md "Folders on the network" needs for the commit.

``soft`` with ``echo_interval``: a server that stops answering makes the calls fail (EIO, then exit 11)
within about a minute instead of hanging the rescue for ever.
"""

from __future__ import annotations

import os
import re
import subprocess

from ..errors import RemoteAuthError, RemoteError, UsageError
from ..platform import tools
from . import Credentials, Location, RemoteOptions, write_secret

# A server that does not answer the client's echo for 3 x this many seconds is taken for gone.
ECHO_INTERVAL = 10
MOUNT_TIMEOUT = 120
# mount.cifs's "mount error(13): Permission denied", and what the kernel's errno says
_ERRNO = re.compile(r"mount error\((\d+)\)")
_AUTH = {13, 1}  # EACCES, EPERM: the server refused the user or the password
_GONE = {110, 111, 112, 113, 101, 115}  # timed out, refused, host down, no route, network unreachable


def split(where: Location) -> tuple[str, str]:
    """The share and the folder below it."""
    share, _, rest = where.path.partition("/")
    if not share:
        raise UsageError(detail=f"{where.shown}: smb://HOST/SHARE/PATH names no share")
    return share, rest


def mount(where: Location, creds: Credentials, options: RemoteOptions, mountpoint: str, work: str) -> str:
    """Mount the share at ``mountpoint``; the folder below it (relative)."""
    share, rest = split(where)
    user = where.user or creds.get("user")
    password = creds.get("password")
    lines = []
    if user:
        lines.append(f"username={user}")
    if password:
        lines.append(f"password={password}")
    if creds.get("domain"):
        lines.append(f"domain={creds.get('domain')}")
    opts = [f"echo_interval={ECHO_INTERVAL}", "soft"]
    if where.port:
        opts.append(f"port={where.port}")
    cred_file = None
    if lines:
        cred_file = write_secret(work, "smb.credentials", "\n".join(lines) + "\n")
        opts.append(f"credentials={cred_file}")
    else:
        opts.append("guest")
    try:
        # mount.cifs itself, not `mount -t cifs`: busybox's mount (the media's) would not read the file
        ok, detail = _mount_cifs(["mount.cifs", f"//{where.host}/{share}", mountpoint, "-o", ",".join(opts)],
                                 work)
    finally:
        if cred_file is not None:
            os.unlink(cred_file)
    if ok:
        return rest
    m = _ERRNO.search(detail)
    code = int(m.group(1)) if m else None
    if code in _AUTH:
        raise RemoteAuthError(path=where.shown, detail=f"{user or 'guest'}@{where.host} refused the "
                                                       "credentials (--credentials-file, RESCUE_SMB_PASSWORD)")
    if code == 2:
        raise RemoteError(path=where.shown, detail=f"{where.host} has no share {share!r}")
    if code in _GONE:
        raise RemoteError(path=where.shown, detail=f"cannot reach {where.host}: {detail}")
    raise RemoteError(path=where.shown, detail=f"cannot mount the SMB share: {detail}")


def _mount_cifs(cmd: list[str], work: str) -> tuple[bool, str]:
    """Run mount.cifs; whether it mounted, and its "mount error(N): ..." line (it ends with a line
    about its manual page, which alone says nothing)."""
    log = os.path.join(work, "mount.log")
    p = tools.start(cmd, log=log)
    try:
        code = p.wait(MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return False, f"mount.cifs did not finish within {MOUNT_TIMEOUT} s"
    try:
        with open(log, errors="replace") as f:
            said = [line.strip() for line in f if line.strip()]
    except OSError:
        said = []
    line = next((x for x in said if x.startswith("mount error")),
                said[-1] if said else f"exit status {code}")
    return code == 0, f"mount.cifs: {line}"
