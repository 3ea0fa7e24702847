"""A session client: pin the manifest, pick the disk, receive, restore, report (`rescue receive`).

`receive` follows FORMAT.md "Multicast sessions", client steps 1-4. The restore is `core.engine.restore`
itself, reading from a `streamfs` folder fed by udp-receiver (multicast) or by the server's HTTP stream
(unicast): no second implementation of reading or checking chunks. When the restore fails because the
stream failed (out of step, ended early, stalled, moved on), the error names the stream's reason
(`SessionError`) rather than the read error it caused. Whatever happens, the server gets a result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from ..engine.layout import plan_layout
from ..engine.pipeline import IO_WORKERS
from ..engine.repo import Repository
from ..engine.restore import RestoreResult, execute_restore, plan_restore
from ..errors import Error, SessionError, TargetRefused
from ..format.c_image import CHUNK_SIZE
from ..progress import Event, Progress
from ..platform.tools import attempt, start
from . import net
from .pick import Choice, pick
from .session import Address, Layout

HTTP_TIMEOUT = 30.0
HEARTBEAT = 2.0  # seconds between progress reports: the server counts a client silent for --stall as lost
# The window of the stream kept around what the restore reads: it reads a few chunks at once (the
# pipeline's depth), each at most a chunk and its record header.
WINDOW = (IO_WORKERS * 2 + 4) * (CHUNK_SIZE + 4096)
MOUNT_TIMEOUT = 30.0


@dataclass
class ReceiveOptions:
    disks: list[str] | None = None  # candidates (default: the machine's own disks, see `pick`)
    stall: float = 120.0
    work_dir: str | None = None  # manifests and logs (default: a new folder in the system's temp)


@dataclass
class ReceiveResult:
    session: str
    mode: str
    disk: Choice
    restore: RestoreResult

    def as_json(self) -> dict[str, Any]:
        return {"session": self.session, "mode": self.mode, "disk": self.disk.as_json(),
                "restore": self.restore.as_json()}


class _Control:
    """The control channel, from the client's side."""

    def __init__(self, addr: Address) -> None:
        self.addr = addr

    def get(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(self.addr.url(path), timeout=HTTP_TIMEOUT) as r:
                return bytes(r.read())
        except (OSError, urllib.error.URLError) as e:
            raise SessionError(detail=f"the session's server {self.addr.host}:{self.addr.port} does not answer "
                                      f"{path}: {getattr(e, 'reason', e)}") from None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.addr.url(path), data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                out = json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError) as e:
            raise SessionError(detail=f"the session's server does not take {path}: {getattr(e, 'reason', e)}") \
                from None
        return out if isinstance(out, dict) else {}


def receive(session: str, password: Callable[[], bytes | None], opts: ReceiveOptions,
            progress: Progress) -> ReceiveResult:
    """Restore the session's image onto the disk its rule picks; the server always gets a result."""
    addr = Address.parse(session)
    control = _Control(addr)
    interface = net.route_to(addr.host)
    mac = net.mac_address(interface)
    work = opts.work_dir or tempfile.mkdtemp(prefix="rescue-session-")
    os.makedirs(work, exist_ok=True)
    client: int | None = None
    state: dict[str, Any] = {"stage": "joining", "done": 0, "total": 0, "disk": {}}
    stop = threading.Event()
    choice: Choice | None = None
    try:
        desc = json.loads(control.get("/session"))
        layout = _pin(control, desc, addr, work)
        refusal: TargetRefused | None = None
        try:
            # Before joining: a PC that cannot take the image must not be waited for by the sender.
            choice = _choose(desc, layout.image, work, password, opts.disks)
            state["disk"] = choice.as_json()
        except TargetRefused as e:
            refusal = e
        joined = control.post("/join", {"mac": mac, "address": _own_address(interface),
                                        "ready": refusal is None, "disk": state["disk"]})
        client, mode = int(joined["client"]), str(joined["mode"])
        if refusal is not None or choice is None:
            raise refusal or TargetRefused(target="(none)", detail="no disk chosen")
        threading.Thread(target=_heartbeat, args=(control, client, state, stop), daemon=True).start()
        folder = os.path.join(work, "image")
        os.makedirs(folder, exist_ok=True)

        def relay(e: Event) -> None:
            if e.stage == "restore" and e.total:
                state.update(stage="restoring", done=e.done, total=e.total)
            progress.report(e)  # the caller's display, and its cancel (Ctrl-C) reaches the restore

        inner = Progress(relay)
        with _Receiver(addr, desc, layout, mode, interface, folder, work, opts.stall) as receiver:
            state["stage"] = "checking"
            try:
                plan = plan_restore(folder, layout.image, choice.path, password, inner, scratch=work)
                state["stage"] = "restoring"
                result = execute_restore(plan, inner)
            except Error as e:
                raise receiver.explain(e) from None
        out = ReceiveResult(str(addr), mode, choice, result)
        stop.set()
        control.post("/result", {"client": client, "mac": mac, "ok": True, "exit_code": 0, "error": "",
                                 "disk": choice.as_json(), "result": result.as_json()})
        return out
    except Error as e:
        stop.set()
        if client is not None:
            try:
                control.post("/result", {"client": client, "mac": mac, "ok": False, "exit_code": e.exit_code,
                                         "error": e.message, "disk": choice.as_json() if choice else {}})
            except SessionError:
                pass  # the server is gone: our own exit code and message say it all
        raise
    finally:
        stop.set()
        if opts.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _choose(desc: dict[str, Any], image: str, work: str, password: Callable[[], bytes | None],
            disks: list[str] | None) -> Choice:
    """The target by the session's rule, and whether the image fits it (the restore checks again)."""
    m = Repository(work).load(image, password)
    try:
        table = m.meta.table
        choice = pick(str(desc.get("target", "largest")), disks, table.disk_id if table else None,
                      desc.get("force") is True)
        if table is not None:
            plan_layout(table, choice.path, choice.size, table.sector_size, windows=table.has_windows)
        elif choice.size < m.meta.source.size:
            raise TargetRefused(target=choice.path, detail=f"it holds {choice.size} bytes, the image's disk "
                                                           f"{m.meta.source.size}")
        return choice
    finally:
        m.close()


def _pin(control: _Control, desc: dict[str, Any], addr: Address, work: str) -> Layout:
    """Fetch the chain's manifests; the point's must be the one the session address names."""
    try:
        layout = Layout.from_json(desc)
    except ValueError as e:
        raise SessionError(detail=str(e)) from None
    if layout.digest != addr.digest or not layout.manifests \
            or layout.manifests[0][0] != f"{layout.image}.manifest":
        raise SessionError(detail="the server serves another image than the session address names")
    for i, (name, length) in enumerate(layout.manifests):
        data = control.get(f"/file/{name}")
        if len(data) != length:
            raise SessionError(detail=f"manifest {name}: {len(data)} bytes arrived, {length} announced")
        # The point's manifest is pinned by the session address (from the command line, not the server);
        # the restore's own checks then authenticate it whole, and through it every other file.
        if i == 0 and data[-32:] != addr.digest:
            raise SessionError(detail=f"manifest {name} is not the one the session address names "
                                      f"(digest {data[-32:].hex()[:16]}..., expected {addr.digest.hex()[:16]}...)")
        with open(os.path.join(work, name), "wb") as f:
            f.write(data)
    return layout


def _own_address(interface: str) -> str:
    try:
        return net.interface_address(interface)
    except Error:
        return ""


def _heartbeat(control: _Control, client: int, state: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT):
        try:
            control.post("/progress", {"client": client, **state})
        except SessionError:
            pass  # the stream's own failure, or the final report, says what went wrong


class _Receiver:
    """The stream source (udp-receiver or the HTTP stream) and the `streamfs` folder it feeds."""

    def __init__(self, addr: Address, desc: dict[str, Any], layout: Layout, mode: str, interface: str,
                 folder: str, work: str, stall: float) -> None:
        self.addr, self.desc, self.layout, self.mode = addr, desc, layout, mode
        self.interface, self.folder, self.work, self.stall = interface, folder, work, stall
        self.status = os.path.join(work, "stream-status")
        self.source: subprocess.Popen[bytes] | None = None
        self.fs: subprocess.Popen[bytes] | None = None
        self.http_error = ""

    def __enter__(self) -> _Receiver:
        r, w = os.pipe()
        try:
            if self.mode == "multicast":
                self.source = start(["udp-receiver", "--interface", self.interface, "--portbase",
                                     str(int(self.desc.get("portbase", 0))), "--nokbd", "--no-progress",
                                     "--receive-timeout", str(int(self.stall))],
                                    stdout=w, log=os.path.join(self.work, "udp-receiver.log"))
            else:
                threading.Thread(target=self._http_stream, args=(w,), daemon=True).start()
                w = -1  # the thread owns it now
            self._mount(r)
        except BaseException:
            self.__exit__()
            raise
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return self

    def _http_stream(self, fd: int) -> None:
        try:
            with urllib.request.urlopen(self.addr.url("/stream"), timeout=self.stall) as resp:
                while block := resp.read(1 << 20):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
        except (OSError, urllib.error.URLError) as e:
            self.http_error = f"the HTTP stream broke: {getattr(e, 'reason', e)}"
        finally:
            os.close(fd)

    def _mount(self, stdin: int) -> None:
        spec = {"manifests": [{"name": n, "path": os.path.join(self.work, n)} for n, _ in self.layout.manifests],
                "volumes": self.desc["volumes"], "keep": WINDOW, "ahead": WINDOW, "stall": self.stall,
                "first": self.stall + float(self.desc.get("starts_within") or 0),
                "status": self.status}
        spec_path = os.path.join(self.work, "streamfs.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        log = open(os.path.join(self.work, "streamfs.log"), "ab")
        try:
            self.fs = subprocess.Popen([sys.executable, "-m", "core.multicast.streamfs", self.folder, spec_path],
                                       stdin=stdin, stdout=log, stderr=log, cwd=root)
        finally:
            log.close()
        deadline = time.monotonic() + MOUNT_TIMEOUT
        first = f"{self.layout.image}.manifest"
        while not os.path.exists(os.path.join(self.folder, first)):
            if self.fs.poll() is not None or time.monotonic() > deadline:
                raise SessionError(detail=f"the session folder could not be mounted (see "
                                          f"{os.path.join(self.work, 'streamfs.log')})")
            time.sleep(0.05)

    def explain(self, e: Error) -> Error:
        """The stream's failure, when there was one, instead of the read error it caused."""
        if isinstance(e, TargetRefused):
            return e
        try:
            with open(self.status) as f:
                why = f.read().strip()
        except OSError:
            why = ""
        why = why or self.http_error
        if why:
            return SessionError(detail=f"{why}; nothing unauthenticated was written, the target has no "
                                       f"partition table (the restore stopped: {e.message})")
        return e

    def __exit__(self, *exc: object) -> None:
        attempt(["fusermount3", "-u", self.folder], timeout=60)
        if self.fs is not None:
            try:
                self.fs.wait(timeout=60)  # it takes the rest of the stream first
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()
        if self.source is not None:
            try:
                self.source.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.source.kill()
                self.source.wait()
