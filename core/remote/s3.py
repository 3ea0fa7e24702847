"""An ``s3://bucket/prefix`` folder through ``rclone mount``, on any S3-compatible store.

rclone runs with ``--vfs-cache-mode minimal``: a file opened write-only (a volume, the lock) streams
straight to the store as one upload (multipart: the size is unknown) completed only when the file is
closed, so the close reports whether the object is there; a file opened for reading and writing (the
manifest, whose header is written last at its start) is assembled in a private cache folder and
uploaded as one object. A rename is a server-side copy then a delete of the old name: the new name
appears whole or not at all (FORMAT.md "Folders on the network"). Before a command that wrote an
image returns, every file the mount shows is checked to be on the store with its size
(`wait_uploaded`).

The keys go into an rclone config file created 0600 in a 0700 folder, removed with it at the end.
"""

from __future__ import annotations

import json
import os
import time

from ..errors import DestinationFull, Error, RemoteAuthError, RemoteError, RepositoryError, UsageError
from ..platform import tools
from . import Credentials, Location, RemoteOptions, reachable, unmount, write_secret

REMOTE = "rescue"
# How long the manifest's upload (queued at its close) may take after the command's last write.
UPLOAD_WAIT = 120.0
# rclone's own log of failed calls, in the private folder: what the store answered to a failed write
LOG = "rclone.log"
# How much of the end of that log is read to explain a failed write (the last error is at its end).
LOG_TAIL = 64 * 1024
# What stores answer when they are out of space or over a quota (MinIO: XMinioStorageFull; HTTP 507).
_FULL = ("XMinioStorageFull", "InsufficientStorage", "status code: 507", "QuotaExceeded", "no space left")
# rclone's read-ahead per open file: bounds a restore's memory (a chain holds two files per image).
BUFFER = "4M"


def _config(where: Location, creds: Credentials, options: RemoteOptions, work: str) -> str:
    key_id, secret = creds.get("access_key_id"), creds.get("secret_access_key")
    if not key_id or not secret:
        raise UsageError(detail=f"{where.shown}: no S3 keys: give access_key_id and secret_access_key in "
                                "--credentials-file (or RESCUE_S3_ACCESS_KEY_ID, "
                                "RESCUE_S3_SECRET_ACCESS_KEY)")
    lines = [f"[{REMOTE}]", "type = s3", "provider = Other", "env_auth = false",
             f"access_key_id = {key_id}", f"secret_access_key = {secret}",
             f"endpoint = {options.s3_endpoint}", f"region = {creds.get('region') or 'us-east-1'}",
             "force_path_style = true"]
    return write_secret(work, "rclone.conf", "\n".join(lines) + "\n")


def _rclone(config: str, *args: str) -> list[str]:
    # rclone's AWS library refuses AWS_CA_BUNDLE with its own HTTP transport ("unsupported transport"):
    # that bundle is given as --ca-cert instead, and the variable emptied (`_ENV`).
    bundle = os.environ.get("AWS_CA_BUNDLE")
    return ["rclone", "--config", config, "--low-level-retries", "3", "--retries", "1", "--contimeout", "15s",
            "--timeout", "60s", *(["--ca-cert", bundle] if bundle else []), *args]


_ENV = {"AWS_CA_BUNDLE": ""}


def mount(where: Location, creds: Credentials, options: RemoteOptions, mountpoint: str, work: str,
          create: bool = False) -> None:
    """Mount the bucket at ``mountpoint`` (the folder is ``where.path`` below it); ``create`` makes the
    bucket when it does not exist yet (a backup's folder is created, a listing's never)."""
    config = _config(where, creds, options, work)
    # A wrong key or an unreachable store is reported here in one line, before anything is mounted.
    probe = tools.attempt(_rclone(config, "lsjson", "--max-depth", "1", f"{REMOTE}:{where.host}"), env=_ENV,
                          timeout=120)
    if not probe.ok and "directory not found" not in probe.detail:
        d = probe.detail
        if any(s in d for s in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")):
            raise RemoteAuthError(path=where.shown,
                                  detail="the store refused the S3 keys (--credentials-file)")
        raise RemoteError(path=where.shown, detail=f"cannot reach the S3 store: {d}")
    if not probe.ok and create:
        made = tools.attempt(_rclone(config, "mkdir", f"{REMOTE}:{where.host}"), env=_ENV, timeout=120)
        if not made.ok:
            raise RemoteError(path=where.shown, detail=f"cannot create the bucket: {made.detail}")
    cache = os.path.join(work, "cache")
    os.mkdir(cache, 0o700)
    # --vfs-write-back 2s: the manifest is closed, then renamed; an upload started at the close races
    # the rename in rclone 1.60 (seen: the upload fails and nothing is stored), one queued for 2 s is
    # renamed in the queue and stored under the final name. Should the rename come later than that,
    # the manifest is not stored and `wait_uploaded` fails the backup: never a false commit.
    o = tools.attempt(_rclone(config, "mount", f"{REMOTE}:{where.host}", mountpoint, "--daemon",
                              "--vfs-cache-mode", "minimal", "--cache-dir", cache, "--vfs-write-back", "2s",
                              "--dir-cache-time", "1s", "--buffer-size", BUFFER, "--attr-timeout", "0s",
                              "--log-file", os.path.join(work, LOG), "--log-level", "ERROR"),
                      env=_ENV, timeout=120, daemon=True)
    if not o.ok or not reachable(mountpoint):
        # A mount that timed out may still come up behind our back (the daemon lives on): detach it.
        unmount(mountpoint)
        # (rclone's own complaint is in its log file, not on its standard error)
        raise RemoteError(path=where.shown, detail="cannot mount the S3 store: "
                                                   f"{_store_said(work) or o.detail or 'rclone stopped'}")


def answers(where: Location, work: str) -> bool:
    """Whether the store still answers (rclone's mount outlives a store that went away: its calls
    then fail with EIO, which alone does not say that the network is the cause)."""
    config = os.path.join(work, "rclone.conf")
    o = tools.attempt(_rclone(config, "lsjson", "--max-depth", "1", f"{REMOTE}:{where.host}"),
                      env=_ENV, timeout=60)
    return o.ok


def _store_sizes(config: str, where: Location) -> dict[str, int] | None:
    path = f"{REMOTE}:{where.host}/{where.path}" if where.path else f"{REMOTE}:{where.host}"
    o = tools.attempt(_rclone(config, "lsjson", "--files-only", path), env=_ENV, timeout=120)
    if not o.ok:
        return None
    try:
        return {e["Name"]: int(e["Size"]) for e in json.loads(o.stdout)}
    except (ValueError, KeyError, TypeError):
        return None


def wait_uploaded(where: Location, creds: Credentials, options: RemoteOptions, mountpoint: str,
                  work: str) -> None:
    """Return once every file the mount shows in the folder is on the store with the same size."""
    local_dir = os.path.join(mountpoint, where.path)
    config = os.path.join(work, "rclone.conf")
    deadline = time.monotonic() + UPLOAD_WAIT
    while True:
        try:
            local = {n: os.stat(os.path.join(local_dir, n)).st_size for n in os.listdir(local_dir)
                     if os.path.isfile(os.path.join(local_dir, n))}
        except FileNotFoundError:
            return  # nothing was written (a read-only command on a missing folder reports that itself)
        except OSError as e:
            raise RemoteError(path=where.shown, detail=f"the connection was lost: {e.strerror}") from None
        remote = _store_sizes(config, where)
        if remote is not None and all(remote.get(n) == size for n, size in local.items()):
            return
        if not reachable(mountpoint) or time.monotonic() > deadline:
            missing = sorted(n for n, size in local.items() if remote is None or remote.get(n) != size)
            raise RemoteError(path=where.shown, detail="the connection was lost before "
                                                       f"{', '.join(missing[:3])} reached the store")
        time.sleep(1.0)


def _store_said(work: str) -> str | None:
    """The store's answer to the last call rclone logged as failed, on one line, or None."""
    try:
        with open(os.path.join(work, LOG), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # An error is a line "DATE TIME ERROR : NAME: what failed: the store's words", sometimes continued on
    # a second line with the HTTP status.
    entries = [e for e in text.split("\n20") if " ERROR : " in e]
    if not entries:
        return None
    said = " ".join(entries[-1].split(" ERROR : ", 1)[1].split())
    return said[:300]


def explain(e: Error, work: str) -> Error:
    """``e`` (a write to the folder failed while the store answers) with what the store said: a full
    store or quota becomes `DestinationFull`; an I/O error names the store's own reason."""
    said = _store_said(work)
    if said is None or type(e) is not RepositoryError:
        return e
    path, detail = e.kwargs.get("path", ""), e.kwargs.get("detail", "")
    if any(k.lower() in said.lower() for k in _FULL):
        return DestinationFull(path=path, detail=f"{detail} (the store said: {said})")
    return RepositoryError(path=path, detail=f"{detail} (the store said: {said})")
