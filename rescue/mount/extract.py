"""`extract`: copy a file or folder out of an image, never writing outside the target folder.

The image is mounted internally (only the chosen partition is browsed) and always unmounted after.
The copy writes only through directory file descriptors opened with O_NOFOLLOW below the target, so
neither a name from the image (``..``, ``/``) nor a symlink that appears in the target can redirect a
write elsewhere. Links from the image (ntfs-3g shows junctions and symlinks as symlinks) are recreated
only when they point inside the copied tree, as relative links; others are skipped and reported. Files
that cannot be read (EIO: a damaged block of the image) are reported, never written half.

The flags are ``os.O_NOFOLLOW``/``os.O_DIRECTORY`` themselves, not `core.platform.files`' constants,
which are 0 where a flag does not exist: this protection must fail loudly, never be silently off
(extract needs FUSE, so it runs on Linux only anyway).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable

from core.engine.view import open_view
from core.platform import files
from core.errors import TargetWriteError, UnsupportedError, UsageError
from core.progress import Event, Progress

from . import server, stack
from .layout import entries, find_partition, point_manifest

BLOCK = 1 << 20  # copy buffer: large enough for full-speed reads through FUSE, small for memory
# A path given on the command line cannot be deeper than NTFS allows (32767 UTF-16 units), so no more
# than this many symlink hops are needed to resolve it; more means a loop.
MAX_LINK_HOPS = 40


@dataclass
class ExtractResult:
    image_id: str
    partition: int
    source: str  # the path inside the partition, "/"-separated, "" for its root
    target: str
    log: str | None = None  # the internal mount's log: why reads failed
    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): could not be read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): refused on purpose

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image_id, "partition": self.partition, "source": self.source,
                "target": self.target, "log": self.log, "files": self.files, "dirs": self.dirs, "links": self.links,
                "bytes": self.bytes, "failed": [{"path": p, "reason": r} for p, r in self.failed],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}


def split_path(path: str) -> list[str]:
    """PATH inside the partition as components: "\\" or "/" separators; a leading separator or drive
    ("C:\\") means the partition's root. ``..`` is refused: a path never leaves the partition."""
    p = path.replace("\\", "/")
    if len(p) >= 2 and p[1] == ":" and p[0].isalpha():
        p = p[2:]
    parts = [c for c in p.split("/") if c not in ("", ".")]
    for c in parts:
        if c == ".." or "\0" in c:
            raise UsageError(detail=f"refusing path {path!r}: '..' and NUL are not allowed in it")
    return parts


def extract(folder: str, image_id: str | None, password: Callable[[], bytes | None], path: str, to: str,
            partition: int | None = None, progress: Progress | None = None) -> ExtractResult:
    """Copy PATH of a partition of an image into the folder ``to`` (created if missing)."""
    progress = progress or Progress()
    parts = split_path(path)
    if os.path.lexists(to) and not os.path.isdir(to):
        raise UsageError(detail=f"--to {to} exists and is not a folder: name a folder to copy into")
    with open_view(folder, image_id, password) as view:
        manifest = point_manifest(view)
        items = entries(manifest.meta, view.size)
        try:
            entry = find_partition(items, partition)
        except LookupError as e:
            raise UsageError(detail=f"image {manifest.image_id}: {e}") from None
        if entry.name not in stack.browsable(items, {entry.number}):
            raise UnsupportedError(detail=f"partition {entry.number} holds {entry.fs or 'no known filesystem'}, "
                                          "which cannot be browsed here (NTFS needs ntfs-3g, FAT fusefat)")
        base = server.LOG_DIR if os.access("/run", os.W_OK) else tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        mp = tempfile.mkdtemp(prefix="extract-", dir=base)
        try:
            mounted = server.start(view, mp, only={entry.number})
            result = ExtractResult(manifest.image_id, entry.number, "/".join(parts), os.path.abspath(to),
                                   mounted.log)
            try:
                Copier(os.path.join(mp, entry.name), result, progress).run(parts)
            finally:
                stack.teardown(mp, lazy=True)
                server.reap(mounted.pid)
                if not result.failed and result.log:
                    # No read failed (or PATH was refused): the log has nothing to explain. When one
                    # did, the error names the log.
                    _remove(result.log)
                    result.log = None
            return result
        finally:
            try:
                os.rmdir(mp)
            except OSError:
                pass  # still mounted (lazily detached): the directory goes with the next reboot


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Copier:
    def __init__(self, root: str, result: ExtractResult, progress: Progress) -> None:
        self.root = os.path.realpath(root)
        self.result = result
        self.progress = progress
        self.top = ""  # partition path ("/a/b") of what is being copied: links may point inside it only

    # --- finding the source ---------------------------------------------------------------------
    def _resolve(self, parts: list[str]) -> str:
        """The real path of PATH below the partition's mount; links may be followed only inside it."""
        cur = self.root
        for i, comp in enumerate(parts):
            cand = os.path.join(cur, comp)
            if not os.path.lexists(cand):
                cand = os.path.join(cur, self._case_insensitive(cur, comp, parts[:i + 1]))
            cur = os.path.realpath(cand)
            if not self._inside(cur):
                raise UsageError(detail=f"{'/'.join(parts[:i + 1])} is a link that leads out of the partition")
        return cur

    def _case_insensitive(self, folder: str, comp: str, shown: list[str]) -> str:
        # Windows paths are case-insensitive; people type them that way.
        try:
            matches = [n for n in os.listdir(folder) if n.casefold() == comp.casefold()]
        except OSError as e:
            raise UsageError(detail=f"cannot list {'/'.join(shown[:-1]) or 'the root'}: {e.strerror}") from None
        if len(matches) != 1:
            raise UsageError(detail=f"no {'/'.join(shown)} in partition {self.result.partition} of image "
                                    f"{self.result.image_id}")
        return matches[0]

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + "/")

    def _ppath(self, real: str) -> str:
        """Partition path ("/" for the root) of a path below the mount."""
        return "/" + os.path.relpath(real, self.root) if real != self.root else "/"

    # --- copying --------------------------------------------------------------------------------
    def run(self, parts: list[str]) -> None:
        src = self._resolve(parts)
        self.top = self._ppath(src)
        try:
            os.makedirs(self.result.target, exist_ok=True)
            dfd = files.open_fd(self.result.target, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise UsageError(detail=f"cannot create or open the folder --to {self.result.target}: "
                                    f"{e.strerror}") from None
        try:
            if src == self.root:
                self._copy_children(src, dfd)
            else:
                self._walk(src, dfd, os.path.basename(src))
        finally:
            os.close(dfd)

    def _walk(self, src: str, dfd: int, name: str) -> None:
        # Depth-first with an explicit stack (NTFS trees can be deeper than Python's recursion limit).
        # A directory's fd stays open until its children are in; then its times are set through it
        # (creating the children changed them).
        todo: list[tuple[str, int, str, os.stat_result | None]] = [(src, dfd, name, None)]
        while todo:
            path, fd, nm, done = todo.pop()
            if done is not None:
                self._times(fd, None, done)
                os.close(fd)
                continue
            self.progress.check()
            made = self._copy_one(path, fd, nm)
            if made is not None:
                sub, st = made
                todo.append((path, sub, ".", st))
                for child in sorted(self._list(path), reverse=True):
                    todo.append((os.path.join(path, child), sub, child, None))

    def _copy_children(self, src: str, dfd: int) -> None:
        for child in sorted(self._list(src)):
            self._walk(os.path.join(src, child), dfd, child)

    def _list(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError as e:
            self._fail(path, e)
            return []

    def _copy_one(self, src: str, dfd: int, name: str) -> tuple[int, os.stat_result] | None:
        """Copy one entry into directory ``dfd``; for a directory, the new directory's fd and the
        source's times (to set once its children are in)."""
        rel = self._ppath(src).lstrip("/")
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            self.result.skipped.append((rel, "name not allowed"))
            return None
        try:
            st = os.lstat(src)
        except OSError as e:
            self._fail(src, e)
            return None
        if stat.S_ISDIR(st.st_mode):
            fd = self._mkdir(dfd, name, rel)
            return None if fd is None else (fd, st)
        if stat.S_ISLNK(st.st_mode):
            self._link(src, dfd, name, rel, st)
        elif stat.S_ISREG(st.st_mode):
            self._file(src, dfd, name, rel, st)
        else:
            self.result.skipped.append((rel, "not a regular file, folder or link"))
        return None

    def _mkdir(self, dfd: int, name: str, rel: str) -> int | None:
        try:
            os.mkdir(name, 0o755, dir_fd=dfd)
        except FileExistsError:
            pass  # merging into an existing folder; O_NOFOLLOW below refuses a link in its place
        except OSError as e:
            raise TargetWriteError(target=self.result.target, detail=f"{rel}: {e.strerror}") from None
        try:
            fd = files.open_fd(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
        except OSError:
            self.result.skipped.append((rel, "the target has something else than a folder there"))
            return None
        self.result.dirs += 1
        return fd

    def _file(self, src: str, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        try:
            fin = files.open_fd(src, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            self._fail(src, e)
            return
        try:
            fout = self._create(dfd, name, rel)
            if fout is None:
                return
            done = 0
            try:
                while True:
                    try:
                        block = os.read(fin, BLOCK)
                    except OSError as e:
                        self._fail(src, e)
                        os.close(fout)
                        fout = -1
                        os.unlink(name, dir_fd=dfd)  # never leave a half file that looks complete
                        return
                    if not block:
                        break
                    self._write(fout, block, rel)
                    done += len(block)
                    self.result.bytes += len(block)
                    if done % (64 * BLOCK) < len(block):
                        self.progress.report(Event("extract", self.result.bytes, 0, rel))
            finally:
                if fout >= 0:
                    os.close(fout)
            self._times(dfd, name, st)
            self.result.files += 1
        finally:
            os.close(fin)

    def _create(self, dfd: int, name: str, rel: str) -> int | None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            return files.open_fd(name, flags, 0o644, dir_fd=dfd)
        except FileExistsError:
            pass
        except OSError as e:
            raise TargetWriteError(target=self.result.target, detail=f"{rel}: {e.strerror}") from None
        # Replace an existing file or link (never write through it: it could be a link or a hard link
        # to a file outside the target); anything else is left alone.
        try:
            old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(old.st_mode):
                self.result.skipped.append((rel, "the target has a folder there"))
                return None
            os.unlink(name, dir_fd=dfd)
            return files.open_fd(name, flags, 0o644, dir_fd=dfd)
        except OSError as e:
            raise TargetWriteError(target=self.result.target, detail=f"{rel}: {e.strerror}") from None

    def _write(self, fd: int, data: bytes, rel: str) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except OSError as e:
                raise TargetWriteError(target=self.result.target, detail=f"{rel}: {e.strerror}") from None
            view = view[n:]

    def _link(self, src: str, dfd: int, name: str, rel: str, st: os.stat_result) -> None:
        try:
            target = os.readlink(src)
        except OSError as e:
            self._fail(src, e)
            return
        here = posixpath.dirname(self._ppath(src))
        if target.startswith("/"):
            # ntfs-3g shows junctions and absolute NTFS links as absolute paths below its mountpoint
            if not (target == self.root or target.startswith(self.root + "/")):
                self.result.skipped.append((rel, f"link to {target} points outside the partition"))
                return
            dest = self._ppath(target)
        else:
            dest = posixpath.normpath(posixpath.join(here, target))
            if dest.startswith("/..") or dest.startswith(".."):
                self.result.skipped.append((rel, f"link to {target} points outside the partition"))
                return
        if not (dest == self.top or dest.startswith(self.top.rstrip("/") + "/")):
            self.result.skipped.append((rel, f"link to {dest} points outside the copied folder"))
            return
        value = posixpath.relpath(dest, here)
        try:
            os.symlink(value, name, dir_fd=dfd)
        except FileExistsError:
            old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(old.st_mode):
                self.result.skipped.append((rel, "the target has a folder there"))
                return
            os.unlink(name, dir_fd=dfd)
            os.symlink(value, name, dir_fd=dfd)
        except OSError as e:
            raise TargetWriteError(target=self.result.target, detail=f"{rel}: {e.strerror}") from None
        self._times(dfd, name, st)
        self.result.links += 1

    def _times(self, dfd: int, name: str | None, st: os.stat_result) -> None:
        """Times of ``name`` in ``dfd`` (never following a link), or of the directory ``dfd`` itself."""
        try:
            if name is None:
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            else:
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        except OSError:
            pass  # a target filesystem without link times (or FAT's 2-second grid) is not an error

    def _fail(self, path: str, e: OSError) -> None:
        reason = "unreadable: damaged block in the image" if e.errno == errno.EIO else (e.strerror or str(e))
        self.result.failed.append((self._ppath(path).lstrip("/"), reason))
