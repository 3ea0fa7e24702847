"""The process that serves a mount: FUSE filesystem, then the drivers on top, until it is unmounted.

`start` runs it in the foreground (until Ctrl-C/SIGTERM or `rescue umount`) or forks a daemon and
returns once the whole stack is mounted and usable, reporting a setup failure as the same error (and
exit code) the daemon hit. Setup errors tear down whatever was already mounted. The image is opened
(and its password checked) before the fork, so those errors reach the user directly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from core import platform
from core.platform import files
from core.engine.view import DiskView, open_view
from core.errors import Error, UnsupportedError, UsageError, all_error_classes
from core.io.allocator import one_arena

from . import stack
from .layout import Entry, entries, point_manifest

log = logging.getLogger("rescue.mount")

LOG_DIR = "/run/rescue"
# The daemon's report on the readiness pipe is one short JSON line; the cap guards against garbage.
MAX_REPORT = 65536


@dataclass
class MountResult:
    mountpoint: str
    image_id: str
    pid: int
    log: str | None
    partitions: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"mountpoint": self.mountpoint, "image": self.image_id, "pid": self.pid, "log": self.log,
                "partitions": self.partitions}


def default_log(mountpoint: str) -> str:
    """Where a daemon logs (read errors and their reasons): /run/rescue, else the temp directory."""
    base = LOG_DIR if os.access("/run", os.W_OK) else tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    name = stack.canonical(mountpoint).strip("/").replace("/", "_") or "root"
    return os.path.join(base, f"mount-{name}.log")


def check_mountpoint(mountpoint: str) -> str:
    mp = stack.canonical(mountpoint)
    if platform.is_mounted(mp):
        raise UsageError(detail=f"{mp} is already a mountpoint (run `rescue umount {mp}` first)")
    if not os.path.isdir(mp):
        raise UsageError(detail=f"mountpoint {mp} is not a directory")
    if not os.path.exists("/dev/fuse"):
        raise UnsupportedError(detail="/dev/fuse is missing: the kernel has no FUSE (modprobe fuse)")
    try:
        import pyfuse3  # noqa: F401 - only checking it is there
        import trio  # noqa: F401
    except ImportError as e:
        raise UnsupportedError(detail=f"mounting needs pyfuse3 and trio ({e}); pip install '.[fuse]'") from None
    return mp


def mount(folder: str, image_id: str | None, password: Callable[[], bytes | None], mountpoint: str, *,
          foreground: bool = False, log_path: str | None = None,
          on_ready: Callable[[MountResult], None] | None = None) -> MountResult:
    """Mount an image of a backup folder at ``mountpoint`` (see `start`)."""
    mp = check_mountpoint(mountpoint)
    with open_view(folder, image_id, password) as view:
        return start(view, mp, foreground=foreground, log_path=log_path, on_ready=on_ready)


def start(view: DiskView, mountpoint: str, *, foreground: bool = False, only: set[int] | None = None,
          log_path: str | None = None, on_ready: Callable[[MountResult], None] | None = None) -> MountResult:
    """Serve ``view`` at ``mountpoint``. Foreground: blocks until unmounted, calling ``on_ready`` once
    usable. Daemon: returns once usable. ``only``: browse only these partition numbers."""
    mp = check_mountpoint(mountpoint)
    manifest = point_manifest(view)
    items = entries(manifest.meta, view.size)
    browse = stack.browsable(items, only)
    log_file = None if foreground and log_path is None else (log_path or default_log(mp))
    result = MountResult(mp, manifest.image_id, os.getpid(), log_file, [
        {"name": e.name, "number": e.number, "fs": e.fs, "label": e.label, "role": e.role, "size": e.size,
         "browsable": e.name in browse} for e in items if e.number > 0])
    if foreground:
        _run(view, mp, items, browse, result, lambda err: _ready_foreground(err, result, on_ready))
        return result
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon: never returns into the caller's code
        code = 0
        try:
            os.close(r)
            os.setsid()
            _detach_stdio(log_file)
            result.pid = os.getpid()
            _run(view, mp, items, browse, result, lambda err: _report(w, err))
        except BaseException:  # noqa: BLE001 - the daemon must exit, whatever happened
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read(MAX_REPORT)
    result.pid = pid
    try:
        msg = json.loads(report) if report else {"error": "Error", "message": "the mount server died while "
                                                                            f"starting (see {log_file})"}
    except ValueError:
        msg = {"error": "Error", "message": f"the mount server sent a garbled report (see {log_file})"}
    if "error" in msg:
        reap(pid)
        raise _rebuild(str(msg["error"]), str(msg.get("message")))
    if on_ready:
        on_ready(result)
    return result


def reap(pid: int, timeout: float = 20.0) -> None:
    """Collect a daemon we forked once it has exited (after its mount is gone), so no zombie lingers
    in a process that lives on (extract, tests). Only that pid: reaping others would steal the exit
    status of the tools subprocess runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _detach_stdio(log_file: str | None) -> None:
    null = files.open_fd(os.devnull, os.O_RDWR)
    out = files.open_fd(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_file else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)


def _rebuild(name: str, message: str) -> Error:
    cls: type[Error] = next((c for c in all_error_classes() if c.__name__ == name), Error)
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.kwargs = {}
    return err


def _report(fd: int, err: BaseException | None) -> None:
    if err is None:
        msg: dict[str, Any] = {"ok": True}
    elif isinstance(err, Error):
        msg = {"error": type(err).__name__, "message": err.message}
    else:
        msg = {"error": "Error", "message": f"{type(err).__name__}: {err}"}
    try:
        os.write(fd, json.dumps(msg).encode())
    finally:
        os.close(fd)


def _ready_foreground(err: BaseException | None, result: MountResult,
                      on_ready: Callable[[MountResult], None] | None) -> None:
    if err is not None:
        raise err
    if on_ready:
        on_ready(result)


def _setup_logging(log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s rescue mount[%(process)d]: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _run(view: DiskView, mp: str, items: list[Entry], browse: set[str], result: MountResult,
         ready: Callable[[BaseException | None], None]) -> None:
    import pyfuse3
    import trio

    from .fusefs import ImageFS

    # One malloc arena for the decode threads (their freed 4 MiB buffers are reused, not kept per
    # thread). Handing big buffers back to the kernel at once was measured too: every decode then
    # faults in fresh pages and takes 3-4x longer, so the mount keeps glibc's thresholds.
    one_arena()
    _setup_logging(result.log)
    info = json.dumps({**result.as_json(), "pid": os.getpid()}, indent=1).encode() + b"\n"
    fs = ImageFS(view, items, browse, info)
    options = {"fsname=rescue", "subtype=rescue", "ro", "default_permissions", "allow_other"}
    try:
        pyfuse3.init(fs, mp, options)
    except RuntimeError as e:
        err = UnsupportedError(detail=f"cannot mount FUSE at {mp}: {e}")
        ready(err)
        return
    log.info("serving image %s at %s", result.image_id, mp)
    failure: list[BaseException] = []

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                async def fuse_main() -> None:
                    await pyfuse3.main()
                    nursery.cancel_scope.cancel()  # unmounted (by `rescue umount`): we are done
                nursery.start_soon(fuse_main)
                try:
                    await trio.to_thread.run_sync(stack.setup, mp, items, browse)
                except Exception as e:  # noqa: BLE001 - any setup failure tears down and is reported
                    log.error("setup failed: %s", getattr(e, "message", e))
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(_quiet_teardown, mp)
                    failure.append(e)
                    nursery.cancel_scope.cancel()
                    return
                ready(None)
                async for signum in signals:
                    log.info("signal %d: unmounting %s", signum, mp)
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(_quiet_teardown, mp)
                    break
                nursery.cancel_scope.cancel()

    try:
        trio.run(serve)
    except BaseException:
        _quiet_teardown(mp)
        raise
    finally:
        fs.storer.stop()
        pyfuse3.close(unmount=platform.is_mounted(mp))
        if fs.failed_reads:
            log.info("%d read(s) failed with EIO", fs.failed_reads)
        log.info("stopped serving %s", mp)
    if failure:
        ready(failure[0])


def _quiet_teardown(mp: str) -> None:
    try:
        stack.teardown(mp, lazy=True)
    except Exception as e:  # noqa: BLE001 - best effort on the way out; the reason goes to the log
        log.error("teardown of %s: %s", mp, getattr(e, "message", e))
