"""Backup folders on the network: ``smb://[user@]host[:port]/share/path``,
``nfs://host[:port]/export/path``, ``sftp://[user@]host[:port]/path`` and ``s3://bucket/prefix``.

A remote folder is mounted with an existing client (the kernel's SMB and NFS clients through mount.cifs
and mount.nfs, sshfs for SFTP, rclone for S3) on a mount point in a private temporary folder, and
every command then works on it as on a local folder: the format's
write ordering (FORMAT.md "Folders on the network") is what makes that safe. Secrets come only from a
credentials file or the environment and reach the clients through stdin or a 0600 file in a 0700
folder removed as soon as the client has read it: never through an argument (`ps` shows those).

`open_folder` is the one entry: a local path passes through unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ..errors import Error, RemoteError, UsageError

# A credentials file holds a few lines; refusing large files avoids reading a disk by mistake.
MAX_CREDENTIALS_FILE = 65536
ENV_SFTP_PASSWORD = "RESCUE_SFTP_PASSWORD"
ENV_SMB_PASSWORD = "RESCUE_SMB_PASSWORD"
SCHEMES = ("smb", "nfs", "sftp", "s3")
# The kernel's own clients (not FUSE): unmounted with umount, not fusermount3.
KERNEL_FS = ("cifs", "smb3", "nfs", "nfs4")
ENV_S3_KEY_ID = "RESCUE_S3_ACCESS_KEY_ID"
ENV_S3_SECRET = "RESCUE_S3_SECRET_ACCESS_KEY"


@dataclass(frozen=True)
class RemoteOptions:
    """What the command line says about a remote folder (never a secret: those are read here)."""

    credentials_file: str | None = None
    s3_endpoint: str | None = None
    accept_host_key: str | None = None


@dataclass(frozen=True)
class Location:
    scheme: str  # "smb", "nfs", "sftp" or "s3"
    host: str  # the server, or the S3 bucket
    port: int | None
    user: str | None
    path: str  # below the server's root (SMB: share/folder, NFS: export/folder) or the bucket; no "/" first
    url: str

    @property
    def shown(self) -> str:
        return self.url


@dataclass
class Credentials:
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key) or None


def parse(folder: str) -> Location | None:
    """The remote folder ``folder`` names, or None for a local path."""
    if "://" not in folder:
        return None
    u = urlsplit(folder)
    scheme = u.scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(detail=f"{folder}: unknown kind of folder {scheme!r}:// "
                                "(smb://, nfs://, sftp:// and s3:// are known)")
    if u.password is not None:
        raise UsageError(detail=f"{scheme}:// folder: no password in the address (it would show in `ps`); "
                                "use --credentials-file or the environment")
    if u.query or u.fragment:
        raise UsageError(detail=f"{folder}: no ?query or #fragment in a folder's address")
    host = u.hostname or ""
    if not host:
        raise UsageError(detail=f"{folder}: the address names no {'bucket' if scheme == 's3' else 'host'}")
    try:
        port = u.port
    except ValueError:
        raise UsageError(detail=f"{folder}: the port is not a number from 1 to 65535") from None
    if scheme == "s3" and (port is not None or u.username):
        raise UsageError(detail=f"{folder}: s3://BUCKET/PREFIX takes no user or port "
                                "(--s3-endpoint names the store)")
    path = unquote(u.path).strip("/")
    if any(part in ("..", ".") for part in path.split("/")):
        raise UsageError(detail=f"{folder}: '.' and '..' are not allowed in the path")
    return Location(scheme, (u.netloc or host) if scheme == "s3" else host, port,
                    unquote(u.username) if u.username else None, path, folder)


def read_credentials(path: str | None, scheme: str = "sftp") -> Credentials:
    """``key = value`` lines (``#`` comments) of --credentials-file; the environment fills the rest
    (the password from the variable of ``scheme``'s kind of folder)."""
    values: dict[str, str] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_CREDENTIALS_FILE + 1)
        except OSError as e:
            raise UsageError(detail=f"--credentials-file {path}: {e.strerror}") from None
        if len(data) > MAX_CREDENTIALS_FILE:
            raise UsageError(detail=f"--credentials-file {path}: larger than {MAX_CREDENTIALS_FILE} bytes")
        for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                # never echo the line: it may hold a secret
                raise UsageError(detail=f"--credentials-file {path}, line {n}: expected 'key = value'")
            values[key.strip().lower()] = value.strip()
    password = ENV_SMB_PASSWORD if scheme == "smb" else ENV_SFTP_PASSWORD
    env = {"password": password, "access_key_id": ENV_S3_KEY_ID, "secret_access_key": ENV_S3_SECRET}
    for key, name in env.items():
        if key not in values and os.environ.get(name):
            values[key] = os.environ[name]
    return Credentials(values)


@contextmanager
def private_dir(path: str | None = None) -> Iterator[str]:
    """A 0700 folder for mount points and secret files (``path``, or a new one), removed with what is
    left in it at the end unless the block left a `KEEP_MARK` file in it."""
    base = "/run/rescue" if os.access("/run", os.W_OK) else None
    if path is None:
        if base:
            os.makedirs(base, mode=0o700, exist_ok=True)
        path = tempfile.mkdtemp(prefix="remote-", dir=base)
    else:
        os.makedirs(path, mode=0o700, exist_ok=True)
    keep = False
    try:
        yield path
        keep = os.path.exists(os.path.join(path, KEEP_MARK))
    finally:
        if not keep:
            remove_private(path)


def remove_private(path: str) -> None:
    """Remove a private folder, never reaching into a mount still attached inside it: rmtree through a
    live mount point would delete the backups on the server."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = os.path.join(path, name)
        try:
            if os.path.ismount(p) or (os.path.isdir(p) and not reachable_dir(p)):
                continue  # still attached (or dead but attached): leave it, and so the folder
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True) if name != "mnt" else os.rmdir(p)
            else:
                os.unlink(p)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def reachable_dir(path: str) -> bool:
    try:
        os.listdir(path)
        return True
    except OSError:
        return False


def write_secret(folder: str, name: str, text: str) -> str:
    """A file only its owner reads (created 0600, never widened), for a client to read a secret from."""
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def reachable(mountpoint: str) -> bool:
    """Whether the client behind ``mountpoint`` still answers (a dead FUSE server gives ENOTCONN)."""
    try:
        os.stat(mountpoint)
        return os.path.ismount(mountpoint)
    except OSError:
        return False


@contextmanager
def open_folder(folder: str, options: RemoteOptions, *, keep_for: str | None = None,
                create: bool = False, writes: bool = False) -> Iterator[str]:
    """The local path to work on for ``folder``: itself, or the remote folder mounted for the time of
    the block. An error inside the block while the connection is gone becomes `RemoteError` (one
    line, exit 11). With ``keep_for`` (an image mount point) the remote mount stays after a block that
    succeeded: `rescue mount`'s server reads from it until `release_kept` (`rescue umount`)."""
    where = parse(folder)
    if where is None:
        if options.s3_endpoint or options.accept_host_key:
            raise UsageError(detail=f"{folder} is a local folder: --s3-endpoint and --accept-host-key are "
                                    "for s3:// and sftp:// folders")
        yield folder
        return
    if where.scheme == "s3" and not options.s3_endpoint:
        raise UsageError(detail=f"{folder}: an s3:// folder needs --s3-endpoint URL (the store's address)")
    if where.scheme == "s3" and options.accept_host_key:
        raise UsageError(detail="--accept-host-key is for sftp:// folders")
    if where.scheme in ("smb", "nfs") and options.accept_host_key:
        raise UsageError(detail="--accept-host-key is for sftp:// folders")
    creds = read_credentials(options.credentials_file, where.scheme)
    from . import nfs, s3, sftp, smb  # the clients' modules only when a remote folder is named

    if keep_for is not None:
        release_kept(keep_for)  # a stale one of an earlier `rescue mount` there
        os.makedirs(KEPT, mode=0o700, exist_ok=True)
    with private_dir(_kept_dir(keep_for) if keep_for is not None else None) as work:
        mountpoint = os.path.join(work, "mnt")
        os.mkdir(mountpoint, 0o700)
        sub = where.path  # the folder below the mount point
        if where.scheme == "sftp":
            sftp.mount(where, creds, options, mountpoint, work)
        elif where.scheme == "smb":
            sub = smb.mount(where, creds, options, mountpoint, work)
        elif where.scheme == "nfs":
            sub = nfs.mount(where, creds, options, mountpoint, work)
        else:
            s3.mount(where, creds, options, mountpoint, work, create=create)
        kept = False

        def gone() -> bool:
            return not reachable(mountpoint) or (where.scheme == "s3" and not s3.answers(where, work))

        try:
            local = os.path.join(mountpoint, sub) if sub else mountpoint
            try:
                yield local
                if where.scheme == "s3" and writes:  # (only a manifest is uploaded after its close)
                    s3.wait_uploaded(where, creds, options, mountpoint, work)
            except Error as e:
                if isinstance(e, RemoteError) or gone():
                    raise _lost(where, _renamed(e, local, where), writes) from None
                e = _renamed(e, local, where)
                raise (s3.explain(e, work) if where.scheme == "s3" else e) from None
            except OSError as e:
                if gone():
                    raise _lost(where, e, writes) from None
                raise
            if keep_for is not None:
                kept = True
                open(os.path.join(work, KEEP_MARK), "w").close()
        finally:
            if not kept:
                unmount(mountpoint)


def _renamed(e: Error, local: str, where: Location) -> Error:
    """The same error with the private mount's path shown as the folder's address."""
    if local not in e.message:
        return e
    kwargs = {k: v.replace(local, where.shown) if isinstance(v, str) else v for k, v in e.kwargs.items()}
    try:
        out = type(e)(**kwargs)
    except TypeError:
        return e
    for name, value in vars(e).items():  # what a caller reads besides the message (a partial result)
        if name != "kwargs":
            setattr(out, name, value)
    return out


def _lost(where: Location, e: BaseException, writes: bool) -> RemoteError:
    if isinstance(e, RemoteError):
        return e
    after = ("the image being written is incomplete; earlier images are untouched" if writes else
             "run the command again once the folder can be reached")
    said = e.message if isinstance(e, Error) else str(e)
    # "Backup folder ADDRESS: what failed" inside "Backup folder ADDRESS: the connection was lost": once
    said = said.split(f"{where.shown}: ", 1)[-1]
    return RemoteError(path=where.shown, detail=f"the connection was lost ({after}): {said}")


def unmount(mountpoint: str) -> None:
    """Detach the client's mount (lazily: a dead server must not hang the command); best effort."""
    from ..platform import tools
    from ..platform.mounts import mounts

    real = os.path.realpath(mountpoint)
    if any(m.mount_point == real and m.fs_type in KERNEL_FS for m in mounts()):
        # a kernel client: a clean unmount when the server answers, else forced and detached at once
        if not (reachable(mountpoint) and tools.attempt(["umount", mountpoint], timeout=60).ok):
            tools.attempt(["umount", "-f", "-l", mountpoint], timeout=60)
        return
    if os.path.ismount(mountpoint) or not reachable(mountpoint):
        tools.attempt(["fusermount3", "-u", "-z", mountpoint], timeout=60)


# `rescue mount` of a remote folder: the kept mounts, one per image mount point they serve.
KEPT = "/run/rescue/remote-kept"
KEEP_MARK = "kept"


def _kept_dir(image_mountpoint: str) -> str:
    key = hashlib.sha256(os.path.realpath(image_mountpoint).encode()).hexdigest()[:16]
    return os.path.join(KEPT, key)


def release_kept(image_mountpoint: str) -> None:
    """Unmount and remove the remote folder kept for ``image_mountpoint``, if there is one."""
    work = _kept_dir(image_mountpoint)
    if os.path.isdir(work):
        unmount(os.path.join(work, "mnt"))
        remove_private(work)
