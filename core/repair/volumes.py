"""Files inside the NTFS and FAT volumes of a disk, read and written only through the real tools.

NTFS files are in a folder (`NtfsFiles`) that `core.platform.ntfs` provides: on Linux ntfs-3g (FUSE) on
a loop device attached over the partition's byte range (``losetup -f --show -o OFFSET --sizelimit SIZE``:
rescue systems have no partition nodes for loop devices, and a disk that is itself a block device is
handled the same way, with the offset on it); on Windows the volume Windows mounted on the partition.
FAT goes through mtools on ``DISK@@OFFSET``. We never write a filesystem ourselves.

`open_volume` is a context manager that always releases the volume, also on errors: ntfs-3g is
unmounted and waited for (it flushes its caches on the way out), a Windows volume written to is
flushed. Paths are Windows-style and case-insensitive (``\\Boot\\BCD``); `VolumeFiles.replace` keeps
the old file as ``NAME.rescue-bak-STAMP`` and replaces atomically (NTFS: temp file, fsync, rename;
FAT: temp file, then a rename over the old name, since FAT has no atomic replace; the backup exists
before the old file is touched).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, Protocol

from ..errors import SourceError, TargetWriteError, UnsupportedError
from ..platform import ErrorFor, attempt, files, run
from ..platform.ntfs import ntfs_root
from ..regf.writer import atomic_replace

# Files we read through these helpers are hives (BCD: tens of KiB; SYSTEM: up to ~100 MiB on old,
# busy machines). 512 MiB bounds memory use on rescue media against a wrong path (a pagefile).
MAX_FILE = 512 << 20
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}


class VolumeFiles(Protocol):
    """What the repair needs of a volume: find, read and replace files (paths like ``\\Boot\\BCD``)."""

    partition: int
    readonly: bool

    def exists(self, path: str) -> bool: ...

    def read(self, path: str) -> bytes: ...

    def replace(self, path: str, data: bytes) -> str | None: ...


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p]


def _win(parts: list[str]) -> str:
    return "\\" + "\\".join(parts)


def _is_link(p: Path) -> bool:
    """A symlink, or on Windows a junction too (Windows shows it as a folder; its target may be on
    another volume, such as WinPE's own X:)."""
    return p.is_symlink() or bool(getattr(os.path, "isjunction", lambda _: False)(p))


def _error(disk: str, write: bool) -> ErrorFor:
    """A tool failure on ``disk``: `TargetWriteError` when we were writing, `SourceError` when reading."""
    if write:
        return lambda detail: TargetWriteError(target=disk, detail=detail)
    return lambda detail: SourceError(path=disk, detail=detail)


class NtfsFiles:
    """Files of an NTFS volume mounted through ntfs-3g at ``root``."""

    def __init__(self, root: Path, partition: int, readonly: bool) -> None:
        self.root = root
        self.partition = partition
        self.readonly = readonly

    def _resolve(self, path: str) -> Path | None:
        """The real path of ``path``, matching each component case-insensitively as Windows does."""
        cur = self.root
        for part in _parts(path):
            want = part.casefold()
            try:
                names = os.listdir(cur)
            except OSError:
                return None
            match = next((n for n in names if n.casefold() == want), None)
            if match is None or _is_link(cur / match):
                # ntfs-3g shows junctions and NTFS symlinks as symlinks, whose targets may lie outside the
                # volume (the rescue system's own files): never followed, as if absent
                return None
            cur = cur / match
        return cur

    def exists(self, path: str) -> bool:
        p = self._resolve(path)
        return p is not None and p.is_file()

    def read(self, path: str) -> bytes:
        p = self._resolve(path)
        if p is None or not p.is_file():
            raise SourceError(path=f"partition {self.partition}:{path}", detail="no such file")
        try:
            size = p.stat().st_size
            if size > MAX_FILE:
                raise UnsupportedError(detail=f"partition {self.partition}:{path} is {size} bytes, over {MAX_FILE}")
            return p.read_bytes()
        except OSError as e:
            raise SourceError(path=f"partition {self.partition}:{path}", detail=e.strerror or str(e)) from e

    def replace(self, path: str, data: bytes) -> str | None:
        """Write ``path`` atomically (missing folders are created); return the backup's Windows path."""
        if self.readonly:
            raise TargetWriteError(target=f"partition {self.partition}", detail="mounted read-only")
        parts = _parts(path)
        parent = self.root
        for part in parts[:-1]:
            match = next((n for n in os.listdir(parent) if n.casefold() == part.casefold()), None)
            if match is None:
                try:
                    (parent / part).mkdir()
                except OSError as e:
                    raise TargetWriteError(target=f"partition {self.partition}:{path}",
                                           detail=e.strerror or str(e)) from e
                match = part
            elif _is_link(parent / match):
                raise TargetWriteError(target=f"partition {self.partition}:{path}",
                                       detail=f"{match} is a link; refusing to write through it")
            parent = parent / match
        existing = self._resolve(path)
        if existing is None and _is_link(parent / parts[-1]):
            raise TargetWriteError(target=f"partition {self.partition}:{path}",
                                   detail="the file is a link; refusing to write through it")
        target = existing if existing is not None else parent / parts[-1]
        bak = atomic_replace(target, data, backup=True)
        return _win(_rel(bak, self.root)) if bak is not None else None


def _rel(p: Path, root: Path) -> list[str]:
    return list(p.relative_to(root).parts)


class FatFiles:
    """Files of a FAT volume reached with mtools at ``disk@@offset``."""

    def __init__(self, disk: str, offset: int, partition: int, readonly: bool) -> None:
        self.image = f"{disk}@@{offset}"
        self.partition = partition
        self.readonly = readonly
        self.error = _error(self.image, write=True)

    def _listing(self, folder: list[str]) -> list[str] | None:
        o = attempt(["mdir", "-b", "-i", self.image, "::" + "/".join(["", *folder]) + "/"], env=MTOOLS_ENV)
        if not o.ok:
            return None
        names = []
        for line in o.stdout.splitlines():
            line = line.strip().rstrip("/")
            if line.startswith("::"):
                names.append(line.rsplit("/", 1)[-1])
        return names

    def exists(self, path: str) -> bool:
        parts = _parts(path)
        names = self._listing(parts[:-1])
        return names is not None and parts[-1].casefold() in (n.casefold() for n in names)

    def read(self, path: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="rescue-fat-") as tmp:
            local = Path(tmp) / "f"
            o = attempt(["mcopy", "-n", "-i", self.image, "::" + "/".join(["", *_parts(path)]), str(local)],
                        env=MTOOLS_ENV)
            if not o.ok or not local.is_file():
                raise SourceError(path=f"partition {self.partition}:{path}",
                                  detail=o.detail or "no such file")
            if local.stat().st_size > MAX_FILE:
                raise UnsupportedError(detail=f"partition {self.partition}:{path} is over {MAX_FILE} bytes")
            return local.read_bytes()

    def replace(self, path: str, data: bytes) -> str | None:
        if self.readonly:
            raise TargetWriteError(target=f"partition {self.partition}", detail="opened read-only")
        parts = _parts(path)
        for i in range(1, len(parts)):
            if self._listing(parts[:i]) is None:
                run(["mmd", "-i", self.image, "::/" + "/".join(parts[:i])], "creating a folder on FAT",
                    error=self.error, env=MTOOLS_ENV)
        folder = "::/" + "/".join(parts[:-1]) + ("/" if len(parts) > 1 else "")
        names = {n.casefold() for n in self._listing(parts[:-1]) or []}
        name = parts[-1]
        bak: str | None = None
        with tempfile.TemporaryDirectory(prefix="rescue-fat-") as tmp:
            new = Path(tmp) / "new"
            new.write_bytes(data)
            tmp_name = f"{name}.rescue-tmp"
            run(["mcopy", "-o", "-i", self.image, str(new), folder + tmp_name], "writing a file on FAT",
                error=self.error, env=MTOOLS_ENV)
            if name.casefold() in names:
                old = Path(tmp) / "old"
                old.write_bytes(self.read(path))
                bak_name = _backup_name(name, names)
                run(["mcopy", "-i", self.image, str(old), folder + bak_name], "keeping a backup on FAT",
                    error=self.error, env=MTOOLS_ENV)
                bak = _win([*parts[:-1], bak_name])
                run(["mdel", "-i", self.image, folder + name], "replacing a file on FAT", error=self.error,
                    env=MTOOLS_ENV)
            run(["mren", "-i", self.image, folder + tmp_name, folder + name], "replacing a file on FAT",
                error=self.error, env=MTOOLS_ENV)
        return bak


def _backup_name(name: str, taken: set[str]) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    cand = f"{name}.rescue-bak-{stamp}"
    n = 1
    while cand.casefold() in taken:
        cand = f"{name}.rescue-bak-{stamp}-{n}"
        n += 1
    return cand


@contextlib.contextmanager
def ntfs_mounted(disk: str, offset: int, size: int, partition: int, *, readonly: bool) -> Iterator[NtfsFiles]:
    """The files of the NTFS volume at ``offset``: through ntfs-3g on Linux, through the volume Windows
    mounted on Windows (`core.platform.ntfs`, where that choice is made); always released afterwards.

    A read-write mount that ntfs-3g turns read-only (hibernated Windows, Fast Startup) is refused with
    `UnsupportedError`: writing there would be lost or would corrupt the hibernated session.
    """

    def refused(detail: str) -> Exception:
        return UnsupportedError(detail=f"partition {partition}: {detail}")

    with ntfs_root(disk, offset, size, partition, readonly=readonly, error=_error(disk, write=not readonly),
                   refused=refused) as root:
        yield NtfsFiles(root, partition, readonly)


@contextlib.contextmanager
def open_volume(disk: str, offset: int, size: int, partition: int, fs: str, *,
                readonly: bool) -> Iterator[VolumeFiles]:
    """The files of partition ``partition`` (``fs`` as `core.fs.probe.probe_usage` names it)."""
    if fs == "ntfs":
        with ntfs_mounted(disk, offset, size, partition, readonly=readonly) as files:
            yield files
    elif fs in ("fat12", "fat16", "fat32"):
        if shutil.which("mcopy") is None:
            raise UnsupportedError(detail="mtools is not installed; it is needed to read and write files on FAT")
        fat = FatFiles(disk, offset, partition, readonly)
        try:
            yield fat
        finally:
            if not readonly:
                _fsync_path(disk)
    else:
        raise UnsupportedError(detail=f"partition {partition}: cannot reach files on a {fs} volume")


def _fsync_path(path: str) -> None:
    """mtools does not fsync; make what it wrote durable before we report success."""
    try:
        fd = files.open_fd(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # best effort; the data went through write() already
    finally:
        os.close(fd)
