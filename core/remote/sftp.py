"""An ``sftp://`` folder through sshfs, with the server's host key checked.

The host key must be in known_hosts (``~/.ssh/known_hosts``, ``/etc/ssh/ssh_known_hosts``) or be the
one ``--accept-host-key SHA256:...`` names (as ``ssh-keygen -lf`` prints it): then the key the server
shows (ssh-keyscan) is compared with that fingerprint and written to a private known_hosts file for
this connection only, and ssh still checks it strictly, so a key swapped in between is refused too.

A password goes to sshfs on stdin (``password_stdin``), a key file by its path (``identity`` in the
credentials file): neither the password nor the key's content is ever an argument.
"""

from __future__ import annotations

import base64
import hashlib
import os

from ..errors import RemoteAuthError, RemoteError
from ..platform import tools
from . import Credentials, Location, RemoteOptions, write_secret

# Connecting and logging in: a server that does not answer within this is unreachable.
CONNECT_TIMEOUT = 30
# A connection that stops answering is declared dead after about 3 x 10 s (then every call fails).
ALIVE = "ServerAliveInterval=10,ServerAliveCountMax=3"


def fingerprint(blob_b64: str) -> str:
    """``SHA256:...`` of a public key as ssh-keygen -l prints it (unpadded base64 of its digest)."""
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_keys(where: Location) -> list[tuple[str, str, str]]:
    """(key type, base64 blob, fingerprint) of each host key the server shows."""
    cmd = ["ssh-keyscan", "-T", "10"] + (["-p", str(where.port)] if where.port else []) + [where.host]
    out = tools.attempt(cmd, timeout=CONNECT_TIMEOUT)
    keys = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            try:
                keys.append((parts[1], parts[2], fingerprint(parts[2])))
            except ValueError:
                continue
    return keys


def _known_name(where: Location) -> str:
    return f"[{where.host}]:{where.port}" if where.port and where.port != 22 else where.host


def accepted_known_hosts(where: Location, wanted: str, work: str) -> str:
    """A known_hosts file holding the server's key whose fingerprint is ``wanted``; refused otherwise."""
    keys = host_keys(where)
    if not keys:
        raise RemoteError(path=where.shown, detail=f"{where.host} shows no SSH host key (unreachable?)")
    match = [k for k in keys if k[2] == wanted.strip()]
    if not match:
        shown = ", ".join(f"{k[2]} ({k[0]})" for k in keys)
        raise RemoteAuthError(path=where.shown, detail=f"the host key of {where.host} is {shown}, not "
                                                       f"{wanted} (--accept-host-key): refused")
    text = "".join(f"{_known_name(where)} {k[0]} {k[1]}\n" for k in match)
    return write_secret(work, "known_hosts", text)


def mount(where: Location, creds: Credentials, options: RemoteOptions, mountpoint: str, work: str) -> None:
    """Mount ``where``'s server root at ``mountpoint`` (the folder is ``where.path`` below it)."""
    user = where.user or creds.get("user")
    target = f"{user + '@' if user else ''}{where.host}:/"
    known = [os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]
    if options.accept_host_key:
        known.insert(0, accepted_known_hosts(where, options.accept_host_key, work))
    opts = [f"UserKnownHostsFile={' '.join(known)}", "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null", f"ConnectTimeout={CONNECT_TIMEOUT}", ALIVE,
            "NumberOfPasswordPrompts=1"]
    password = creds.get("password")
    identity = creds.get("identity")
    if identity:
        opts += [f"IdentityFile={os.path.abspath(identity)}", "IdentitiesOnly=yes"]
    if password:
        # (one method: sshfs splits -o at commas)
        opts += ["password_stdin", "PreferredAuthentications=password"]
    else:
        opts += ["BatchMode=yes"]  # no prompt can hang a rescue: a key works or the login fails
    # ssh's own messages go to a log of ours: sshfs's last line ("read: Connection reset by peer")
    # does not say whether the key, the login or the network failed.
    log = os.path.join(work, "ssh.log")
    opts.append(f"ssh_command=ssh -E {log}")
    cmd = ["sshfs", target, mountpoint, "-o", ",".join(opts)]
    cmd += ["-p", str(where.port)] if where.port else []
    o = tools.attempt(cmd, input=(password + "\n") if password else None, timeout=CONNECT_TIMEOUT * 2)
    if o.ok:
        return
    try:
        with open(log, errors="replace") as f:
            said = [line.strip() for line in f if line.strip()]
    except OSError:
        said = []
    detail = said[-1] if said else o.detail
    if any("Host key verification failed" in line or "REMOTE HOST IDENTIFICATION HAS CHANGED" in line
           for line in said):
        seen = ", ".join(f"{k[2]} ({k[0]})" for k in host_keys(where)) or "none shown"
        raise RemoteAuthError(path=where.shown, detail=f"the host key of {where.host} is not in known_hosts "
                                                       f"({seen}); check it and pass --accept-host-key "
                                                       "FINGERPRINT, or add it to ~/.ssh/known_hosts")
    if "Permission denied" in detail or "Authentication failed" in detail:
        raise RemoteAuthError(path=where.shown, detail=f"{user or 'the user'}@{where.host} refused the "
                                                       "credentials (--credentials-file, "
                                                       "RESCUE_SFTP_PASSWORD)")
    raise RemoteError(path=where.shown, detail=f"cannot mount over SFTP: {detail}")
