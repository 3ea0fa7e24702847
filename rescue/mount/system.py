"""The system side of a mount: loop devices, mounting ntfs-3g/fusefat, /proc/self/mountinfo, unmounting.

Everything goes through the real tools (losetup, ntfs-3g, fusefat, umount) so what we do is what an
administrator would type. Failures become `core.errors` errors naming the tool and its message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from core.errors import FormatError, UnsupportedError, UsageError

# How long a freshly started FUSE driver may take to appear in the mount table: ntfs-3g mounts in well
# under a second; the margin covers a loaded machine.
MOUNT_WAIT = 20.0
# How long we wait for a loop device to go away once its last user (ntfs-3g) has exited.
DETACH_WAIT = 20.0


class BusyError(UsageError):
    """{detail}"""


def run(cmd: list[str], what: str) -> str:
    """Run a tool; its stdout, or UnsupportedError naming it and its stderr."""
    if shutil.which(cmd[0]) is None:
        raise UnsupportedError(detail=f"{cmd[0]} is not installed ({what}); scripts/setup.sh installs it")
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().replace("\n", " | ")
        raise UnsupportedError(detail=f"{what}: {' '.join(cmd)} exited {p.returncode}: {err}")
    return p.stdout


@dataclass(frozen=True)
class MountInfo:
    mountpoint: str
    fstype: str
    source: str


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounts() -> list[MountInfo]:
    """The mount table of our namespace."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if " - " not in line or len(fields) < 10:
                continue
            sep = fields.index("-")
            out.append(MountInfo(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2])))
    return out


def mounts_under(path: str) -> list[MountInfo]:
    """Mounts at ``path`` or below it, deepest (last mounted) first: the order to unmount them."""
    path = path.rstrip("/") or "/"
    found = [m for m in mounts() if m.mountpoint == path or m.mountpoint.startswith(path + "/")]
    return list(reversed(found))


def is_mounted(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return any(m.mountpoint == path for m in mounts())


def wait_mounted(path: str, proc: subprocess.Popen[bytes] | None, what: str, log_path: str | None) -> None:
    """Wait until a FUSE driver we started has mounted ``path``; fail with its message if it exits."""
    deadline = time.monotonic() + MOUNT_WAIT
    while not is_mounted(path):
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            raise FormatError(what=what, detail=f"could not be mounted ({_tail(log_path)})")
        if time.monotonic() > deadline:
            raise FormatError(what=what, detail=f"was not mounted within {MOUNT_WAIT:.0f} s ({_tail(log_path)})")
        time.sleep(0.02)


def _tail(log_path: str | None) -> str:
    if not log_path:
        return "no log"
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 600))  # the driver's last words are enough for a one-line error
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return "no log"
    return text.replace("\n", " | ") or "no message"


def loop_attach(path: str) -> str:
    """A read-only loop device on ``path``; its /dev path."""
    # Another process may grab the same free device between losetup's search and its attach (EBUSY);
    # a retry picks the next free one.
    for attempt in range(5):
        try:
            return run(["losetup", "-r", "-f", "--show", path], f"attaching {path} to a loop device").strip()
        except UnsupportedError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def loops_backed_by(prefix: str) -> list[str]:
    """Loop devices whose backing file is ``prefix`` or lies below it."""
    if shutil.which("losetup") is None:
        return []
    p = subprocess.run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], capture_output=True,
                       text=True, check=False)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    prefix = prefix.rstrip("/")
    out = []
    for d in json.loads(p.stdout).get("loopdevices", []):
        back = str(d.get("back-file") or "")
        # The kernel appends " (deleted)" when the file's mount went away under it (a stale mount).
        back = back.removesuffix(" (deleted)")
        if back == prefix or back.startswith(prefix + "/"):
            out.append(str(d["name"]))
    return out


def loop_detach(devices: list[str], wait: bool = True) -> None:
    """Detach loop devices; a device still open is detached by the kernel once its user closes it, so
    we wait (bounded) until each is really gone (``wait=False``: leave that to the kernel)."""
    for dev in devices:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
    deadline = time.monotonic() + DETACH_WAIT
    while wait:
        left = [d for d in devices if _loop_in_use(d)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise BusyError(detail=f"loop device(s) {', '.join(left)} are still in use")
        for dev in left:
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
        time.sleep(0.05)


def _loop_in_use(dev: str) -> bool:
    name = os.path.basename(dev)
    return os.path.exists(f"/sys/block/{name}/loop/backing_file")


def unmount(path: str, lazy: bool = False) -> None:
    """Unmount one mount; BusyError when something still uses it (a shell's cwd, an open file)."""
    # A just-closed file can keep a FUSE mount busy for a moment: retry briefly before calling it busy.
    last = ""
    for attempt in range(6):
        p = subprocess.run(["umount", path], capture_output=True, text=True, check=False)
        if p.returncode == 0 or not is_mounted(path):
            return
        last = p.stderr.strip()
        time.sleep(0.1 * (attempt + 1))
    if lazy:
        subprocess.run(["umount", "-l", path], capture_output=True, check=False)
        if not is_mounted(path):
            return
    raise BusyError(detail=f"{path} is busy ({last}): close the programs and shells using it and run "
                           "`rescue umount` again (or `rescue umount --lazy`)")
