"""The options every command that takes a FOLDER has for folders on the network, and the decorator
that mounts such a folder for the time of the command (`core.remote.open_folder`)."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import click

from core.remote import RemoteOptions, open_folder

F = TypeVar("F", bound=Callable[..., Any])


def remote_folder(param: str = "folder", keep_for: str | None = None, create: bool = False,
                  writes: bool = False) -> Callable[[F], F]:
    """Add --credentials-file, --s3-endpoint and --accept-host-key, and call the command with
    ``param`` turned into a local path (the remote folder mounted, then unmounted after it); ``create``:
    the command makes the folder (a missing bucket is created); ``writes``: it writes an image there."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, credentials_file: str | None, s3_endpoint: str | None,
                accept_host_key: str | None, **kwargs: Any) -> Any:
            options = RemoteOptions(credentials_file, s3_endpoint, accept_host_key)
            keep = kwargs.get(keep_for) if keep_for and not kwargs.get("foreground") else None
            with open_folder(kwargs[param], options, keep_for=keep, create=create, writes=writes) as local:
                kwargs[param] = local
                return fn(*args, **kwargs)

        for decorator in reversed([
            click.option("--credentials-file", type=click.Path(dir_okay=False), default=None,
                         help="smb://, sftp:// and s3:// folders: 'key = value' lines (user, password, "
                              "domain, identity; access_key_id, secret_access_key, region). Never on the "
                              "command line."),
            click.option("--s3-endpoint", default=None, metavar="URL",
                         help="s3:// folders: the S3-compatible store's address, "
                              "e.g. https://s3.example.com"),
            click.option("--accept-host-key", default=None, metavar="FINGERPRINT",
                         help="sftp:// folders: trust this host key (SHA256:..., as ssh-keygen -lf prints) "
                              "when it is not in known_hosts."),
        ]):
            run = decorator(run)
        return run  # type: ignore[return-value]

    return wrap
