"""Which commands run where: the one table the CLI and README's "Linux media and WinPE" table follow.

The Linux media run every command. On Windows (WinPE) the engine's own work runs the same (disks,
backup, list, verify, restore, clone, merge, prune, unlock: reading and writing disks and image
files), and adapt, which edits the Windows' files through the volume Windows itself mounted; what
needs the Linux tools (FUSE, ntfs-3g, ntfsresize, mtools) or Linux itself does not.
A command of `UNAVAILABLE` exits 6 on Windows with one line saying why and what to use instead;
`LIMITS` says what a command that runs there cannot do (each refused at its plan, before any write:
`core.platform.tools.require`). tests/cli/test_platforms.py keeps README's table equal to these.
"""

from __future__ import annotations

import sys

import click

from core.errors import UnsupportedError

INSTEAD = "use the Linux rescue media"

UNAVAILABLE: dict[str, str] = {
    "mount": "browsing an image needs FUSE and ntfs-3g",
    "umount": "browsing an image needs FUSE and ntfs-3g",
    "extract": "taking files out of an image needs FUSE and ntfs-3g",
    "bcd": "the boot store is read and written through ntfs-3g and mtools",
    "fix-boot": "the boot store and boot records are repaired through ntfs-3g and mtools",
    "net": "it shows the Linux kernel's network; on WinPE, ipconfig /all shows Windows' own",
    "serve": "a session runs udp-sender and dnsmasq, which the Linux media carry",
    "receive": "a PC joins a session booted from the Linux media over the network",
}

LIMITS: dict[str, str] = {
    "restore": "resizing NTFS (ntfsresize) and boot repair after partitions move (ntfs-3g) are refused at the "
               "plan, --adapt with them: restore onto a disk at least as large with --keep-layout",
    "clone": "the same limits as restore",
    "backup": "FOLDER is a local folder or a share Windows mounted (net use Z: \\\\server\\share); smb://, "
              "nfs://, sftp:// and s3:// addresses need the Linux media",
}


def on_windows() -> bool:
    return sys.platform == "win32"


def unavailable_command(name: str) -> click.Command:
    """What `rescue NAME` is on Windows when NAME cannot run there: one line, exit 6, whatever the arguments."""
    why = UNAVAILABLE[name]

    def refuse(args: tuple[str, ...]) -> None:
        raise UnsupportedError(detail=f"rescue {name} is not available on Windows ({why}): {INSTEAD}")

    return click.Command(name, callback=refuse, help=f"Not available on Windows: {why}; {INSTEAD}.",
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
