"""A backup folder: its images, its lock, and how image ids are made.

A folder holds any number of images, each made of ``ID.vNNNN`` volume files and one ``ID.manifest``.
Only an image with a valid manifest is complete; volumes without one (or ``*.partial`` files) belong
to a backup that did not finish and are listed as incomplete, never restored.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from ..errors import Error, ImageNotFound, IncompleteImage, IntegrityError, LockedError, RepositoryError
from ..format import manifest as mf
from ..format.manifest import Manifest
from ..format.volume import volume_name
from ..io.atomic import fsync_dir
from ..io.atomic import os_error
from ..platform import files
from ..platform.process import pid_alive

LOCK_NAME = "rescue.lock"
# Where Linux names this boot and this installation; absent elsewhere (then the identity is the hostname).
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_MACHINE_ID = "/etc/machine-id"
# How long an empty or unreadable lock may belong to a writer still filling it; older, its writer died.
LOCK_FILL_GRACE = 2.0
_ID_RE = re.compile(r"^(\d{8}-\d{6}-[0-9a-f]{6})\.(manifest|v\d{4})(\.partial)?$")


@dataclass
class ImageEntry:
    """One image as `list` shows it; ``error`` says why an image is incomplete or unreadable."""

    id: str
    complete: bool
    kind: str = "unknown"
    parent: str | None = None
    time: str = ""
    bytes: int = 0
    encrypted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    has_manifest: bool = True
    exception: Error | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "parent": self.parent, "time": self.time, "bytes": self.bytes,
               "complete": self.complete, "encrypted": self.encrypted}
        for key in ("source", "partitions", "used_bytes"):
            if key in self.summary:
                out[key] = self.summary[key]
        if self.error:
            out["error"] = self.error
        return out


def _read_id(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def host_identity() -> dict[str, str]:
    """What names this machine and this boot of it in a lock: the hostname alone is not enough (every
    stick of the same rescue media has the same one), a pid means something only within one boot."""
    return {"host": socket.gethostname(), "machine_id": _read_id(_MACHINE_ID), "boot_id": _read_id(_BOOT_ID)}


def _gone(holder: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether the lock ``holder`` wrote is certainly dead, seen from ``me`` (both `host_identity`)."""
    if holder.get("host") != me["host"]:
        return False
    if me["machine_id"] and holder.get("machine_id") == me["machine_id"] and holder.get("boot_id") \
            and holder.get("boot_id") != me["boot_id"]:
        return True  # this machine, an earlier boot: every process of that boot is gone
    # The same boot (or, where there are no boot ids, as on Windows, the same host): ask the pid.
    return holder.get("boot_id", "") == me["boot_id"] and holder.get("machine_id", "") == me["machine_id"] \
        and not pid_alive(holder.get("pid"))


def _holder_text(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')} (boot {str(holder.get('boot_id') or '?')[:8]})"


def new_image_id(now: float | None = None) -> str:
    """Sortable, FAT-safe id: UTC time plus 24 random bits (two backups in one second never clash)."""
    t = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
    return t.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class Repository:
    """A backup folder on a mounted filesystem (USB drive, NAS share, ...)."""

    def __init__(self, path: str, create: bool = False) -> None:
        self.path = os.path.abspath(path)
        if create:
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError as e:
                raise RepositoryError(path=self.path, detail=f"cannot create: {e.strerror}") from None
        if not os.path.isdir(self.path):
            raise RepositoryError(path=self.path, detail="not a folder (or missing)")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for writers: two backups into one folder would interleave ids and space."""
        path = os.path.join(self.path, LOCK_NAME)
        me: dict[str, Any] = {**host_identity(), "pid": os.getpid(), "time": time.time()}
        for _attempt in range(3):
            try:
                fd = files.open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | files.CLOEXEC, 0o644)
            except FileExistsError:
                if self._stale_lock(path, me):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    except OSError as e:
                        raise os_error(e, self.path, f"removing stale {LOCK_NAME}") from None
                    continue
                holder = self._read_lock(path)
                raise LockedError(path=self.path, detail=f"lock held by {_holder_text(holder)}; if no backup "
                                                         f"is running there, clear it with `rescue unlock`") from None
            except OSError as e:
                raise os_error(e, self.path, f"creating {LOCK_NAME}") from None
            data = json.dumps(me).encode()
            try:
                # One unbuffered write: the lock is empty only between this call and the one before.
                try:
                    written = os.write(fd, data)
                finally:
                    os.close(fd)
                if written != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as e:
                try:
                    os.unlink(path)  # an empty lock would block every later backup
                except OSError:
                    pass
                raise os_error(e, self.path, f"writing {LOCK_NAME}") from None
            break
        else:
            raise LockedError(path=self.path, detail="another backup keeps taking the lock")
        try:
            yield
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _stale_lock(self, path: str, me: dict[str, Any]) -> bool:
        """A lock whose writer is gone: this very boot of this machine and a dead pid, an earlier boot
        of this machine, or left empty by a writer that died between creating and filling it (kill -9,
        power cut); True also if it vanished meanwhile. A lock of another machine is never stale here:
        its pid means nothing on this one (two technicians backing up into one share)."""
        holder = self._read_lock(path)
        if holder is None:
            try:
                age = time.time() - os.stat(path).st_mtime
            except FileNotFoundError:
                return True
            except OSError:
                return False
            # A live writer fills its lock right after creating it; wait out that moment once.
            time.sleep(LOCK_FILL_GRACE - min(max(age, 0.0), LOCK_FILL_GRACE))
            holder = self._read_lock(path)
            if holder is None:
                return True
        return holder is not None and _gone(holder, me)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the folder's lock (its JSON), or None when there is no readable lock."""
        return self._read_lock(os.path.join(self.path, LOCK_NAME))

    def break_lock(self) -> dict[str, Any] | None:
        """Remove the lock whatever holds it (`rescue unlock`: the technician vouches that its writer,
        maybe on another machine, is gone); returns who held it."""
        path = os.path.join(self.path, LOCK_NAME)
        holder = self._read_lock(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise os_error(e, self.path, f"removing {LOCK_NAME}") from None
        fsync_dir(self.path)
        return holder or {}

    @staticmethod
    def _read_lock(path: str) -> dict[str, Any] | None:
        try:
            with open(path) as f:
                value = json.load(f)
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    def _ids(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        try:
            names = os.listdir(self.path)
        except OSError as e:
            raise RepositoryError(path=self.path, detail=f"cannot list: {e.strerror}") from None
        for name in names:
            m = _ID_RE.match(name)
            if m:
                found.setdefault(m.group(1), set()).add(name)
        return found

    def manifest_path(self, image_id: str) -> str:
        return os.path.join(self.path, f"{image_id}.manifest")

    def list_images(self) -> list[ImageEntry]:
        """Every image, oldest state first; complete ones carry their summary.

        Ordered by the time of the state an image holds (a merged full image takes the time of the
        point it was folded from), then by id: "latest" means the newest state of the disk.
        """
        out: list[ImageEntry] = []
        for image_id, names in sorted(self._ids().items()):
            if f"{image_id}.manifest" not in names:
                out.append(ImageEntry(image_id, False, time=_id_time(image_id),
                                      error="no manifest: the backup did not finish", has_manifest=False))
                continue
            try:
                f = mf.read_file(self.manifest_path(image_id), image_id)
                s = f.summary
                _check_belongs(image_id, names, s)
            except Error as e:
                out.append(ImageEntry(image_id, False, time=_id_time(image_id), error=e.message, exception=e))
                continue
            try:
                parent = s.get("parent")
                out.append(ImageEntry(image_id, True, kind=str(s.get("kind", "unknown")),
                                      parent=parent if isinstance(parent, str) else None,
                                      time=str(s.get("time", "")), bytes=int(s.get("bytes", 0)),
                                      encrypted=f.encrypted, summary=s))
            except (TypeError, ValueError):
                out.append(ImageEntry(image_id, False, time=_id_time(image_id),
                                      error=f"{image_id}.manifest: summary is malformed"))
        out.sort(key=lambda i: (i.time, i.id))
        return out

    def remove_image(self, image_id: str) -> None:
        """Delete an image: the manifest first (the image stops being committed at once), then volumes."""
        names = sorted(self._ids().get(image_id, set()), key=lambda n: not n.endswith(".manifest"))
        for n, name in enumerate(names):
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise RepositoryError(path=self.path, detail=f"cannot delete {name}: {e.strerror}") from None
            if n == 0:
                fsync_dir(self.path)
        fsync_dir(self.path)

    def resolve(self, image_id: str | None) -> str:
        """The given id (checked to exist) or the latest image that has a manifest.

        A damaged newest manifest is reported, never silently passed over for an older image: the
        user asked for the latest state. Images without a manifest (unfinished backups) are skipped.
        """
        images = self.list_images()
        if image_id is None:
            committed = [i for i in images if i.has_manifest]
            if not committed:
                raise ImageNotFound(path=self.path, detail="holds no complete image")
            if not committed[-1].complete:
                raise committed[-1].exception or IntegrityError(detail=f"image {committed[-1].id}: "
                                                                       f"{committed[-1].error}")
            return committed[-1].id
        for i in images:
            if i.id == image_id:
                if not i.has_manifest:
                    raise IncompleteImage(image=image_id, detail=i.error)
                if not i.complete:
                    raise i.exception or IntegrityError(detail=f"image {image_id}: {i.error}")
                return image_id
        raise ImageNotFound(path=self.path, detail=f"no image {image_id!r} (see 'rescue list')")

    def load(self, image_id: str, password: Callable[[], bytes | None]) -> Manifest:
        """Read, authenticate and decode an image's manifest."""
        f = mf.read_file(self.manifest_path(image_id), image_id)
        return mf.open_manifest(f, password)


def _check_belongs(image_id: str, names: set[str], summary: dict[str, Any]) -> None:
    """A manifest copied in from another folder (or renamed) must not pass for an image of this one."""
    named = summary.get("id")
    if named != image_id:
        raise IntegrityError(detail=f"{image_id}.manifest is the manifest of image {named} "
                                    "(renamed, or copied from another folder)")
    first = volume_name(image_id, 0)
    if first not in names:  # every image has a first volume
        raise IncompleteImage(image=image_id, detail=f"volume {first} is missing (deleted, or the manifest "
                                                     "was copied here without its volumes)")


def _id_time(image_id: str) -> str:
    try:
        t = datetime.strptime(image_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return ""
    return t.isoformat()
