"""The session server: control channel, one multicast send, the clients' results (`rescue serve`).

`Session.open` checks the image (every volume of its chain, as a restore would, with the password when
it is encrypted: the password stays here) and the interface (an IPv4 address; no default route through
it unless allowed), then serves the control channel (FORMAT.md "Multicast sessions") on that address
only. `Session.run` waits for ``clients`` joins or ``wait`` seconds, whichever comes first, sends the
stream once with udp-sender to the clients that joined for multicast, serves it over HTTP to the
others, and returns when every client that joined has reported (or has been silent for ``stall``
seconds). It never prints: each change is a `core.progress.Event` ("client", with the client's row).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ..engine.chain import Chain
from ..engine.repo import Repository
from ..errors import Error, SessionError, UsageError
from ..progress import Event, Progress
from ..platform.tools import start
from . import boot, net
from .pick import check_rule
from .session import DEFAULT_PORT, DEFAULT_PORTBASE, Address, Layout, describe

_BODY_LIMIT = 1 << 20  # a client's report is a restore's JSON: far below this
# udp-sender starts once the clients that joined for multicast have connected, or after this long with
# those that have: a PC that joined and then died must not hold the others back for ever.
SENDER_MAX_WAIT = 60


@dataclass
class Options:
    interface: str
    port: int = DEFAULT_PORT
    portbase: int = DEFAULT_PORTBASE
    clients: int | None = None
    wait: float = 600.0
    target: str = "largest"
    force: bool = False
    max_bitrate: str | None = None
    unicast: bool = False
    stall: float = 120.0
    allow_default_route: bool = False
    log_dir: str = "/var/tmp"
    boot: str | None = None  # a network-boot tree (builder/netboot.py): PXE and TFTP on the interface
    dhcp_range: str | None = None  # FIRST,LAST: be the DHCP server (else proxy DHCP)
    append: str = ""  # more kernel arguments for the network-booted PCs


@dataclass
class Client:
    number: int
    mac: str
    address: str
    mode: str
    joined: float
    seen: float
    stage: str = "joined"
    done: int = 0
    total: int = 0
    ok: bool | None = None
    exit_code: int | None = None
    error: str = ""
    disk: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        if self.ok is None:
            return self.stage
        return "done" if self.ok else ("refused" if self.exit_code == 40 else "failed")

    def as_json(self) -> dict[str, Any]:
        return {"client": self.number, "mac": self.mac, "address": self.address, "mode": self.mode,
                "state": self.state, "done": self.done, "total": self.total, "ok": self.ok,
                "exit_code": self.exit_code, "error": self.error, "disk": self.disk, "result": self.result}


@dataclass
class SessionResult:
    image: str
    session: str
    seconds: float
    stream_bytes: int
    clients: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image, "session": self.session, "seconds": round(self.seconds, 3),
                "stream_bytes": self.stream_bytes, "clients": self.clients}


class Session:
    def __init__(self, folder: str, image_id: str | None, password: Callable[[], bytes | None], opts: Options,
                 progress: Progress) -> None:
        check_rule(opts.target)
        self.opts = opts
        self.progress = progress
        self.address = net.interface_address(opts.interface)
        routes = net.default_routes_via(opts.interface)
        if routes and not opts.allow_default_route:
            raise UsageError(detail=f"{opts.interface} carries the default route ({routes[0]}): it is probably "
                                    "a shared network, where a boot server disturbs others; use an isolated "
                                    "network, or --i-know-this-network")
        repo = Repository(folder)
        self.folder = repo.path
        image = repo.resolve(image_id)
        progress.report(Event("check", message=f"checking the volumes of image {image} and its chain"))
        with Chain(repo, image, password) as chain:
            self.layout: Layout = describe(chain, repo.path)
        self.session = Address(self.address, opts.port, self.layout.digest)
        self.state = "waiting"
        self.started = time.monotonic()
        self.clients: list[Client] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.httpd = ThreadingHTTPServer((self.address, opts.port), _handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="session-http", daemon=True).start()
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        if opts.boot:
            try:
                root = boot.tftp_root(opts.boot, tempfile.mkdtemp(prefix="rescue-tftp-", dir=opts.log_dir),
                                      str(self.session), opts.append)
                self.tftp = root
                self.dnsmasq = boot.start_dnsmasq(opts.interface, self.address, root, opts.dhcp_range,
                                                  os.path.join(opts.log_dir, "rescue-dnsmasq.log"),
                                                  os.path.join(root, "leases"))
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Stop serving (the control channel, the boot server); `run` does it when the session ends."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.dnsmasq is not None:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
                self.dnsmasq.wait()
            self.dnsmasq = None
            shutil.rmtree(self.tftp, ignore_errors=True)

    # --- what the handler calls (under no lock but its own) ---------------------------------------------

    def describe(self) -> dict[str, Any]:
        # How long a PC that joins now may wait for the first byte: the rest of the wait for the others,
        # then udp-sender's own wait for the receivers to connect.
        left = max(0.0, self.opts.wait - (time.monotonic() - self.started)) if self.state == "waiting" else 0.0
        return self.layout.as_json() | {"target": self.opts.target, "force": self.opts.force,
                                        "portbase": self.opts.portbase, "state": self.state,
                                        "starts_within": round(left + SENDER_MAX_WAIT)}

    def join(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            mode = "multicast" if self.state == "waiting" and not self.opts.unicast else "unicast"
            if body.get("ready") is False:
                mode = "none"  # its disk was refused: it reports that next and receives nothing
            now = time.monotonic()
            c = Client(len(self.clients) + 1, str(body.get("mac", ""))[:40], str(body.get("address", ""))[:60],
                       mode, now, now)
            if isinstance(body.get("disk"), dict):
                c.disk = body["disk"]
            self.clients.append(c)
            self.changed.notify_all()
        self._report(c)
        return {"client": c.number, "mode": mode}

    def update(self, body: dict[str, Any], final: bool) -> dict[str, Any]:
        with self.lock:
            n = body.get("client")
            if not isinstance(n, int) or not 0 < n <= len(self.clients):
                raise ValueError("no such client")
            c = self.clients[n - 1]
            if c.ok is not None:
                return {"ok": True}  # a report after the result (a retry): the first one stands
            c.seen = time.monotonic()
            if final:
                c.ok = body.get("ok") is True
                c.exit_code = body.get("exit_code") if isinstance(body.get("exit_code"), int) else None
                c.error = str(body.get("error") or "")[:2000]
                if isinstance(body.get("disk"), dict) and body["disk"]:
                    c.disk = body["disk"]
                c.result = body.get("result") if isinstance(body.get("result"), dict) else None
            else:
                c.stage = str(body.get("stage", c.stage))[:40]
                c.done = int(body.get("done") or 0)
                c.total = int(body.get("total") or 0)
                if isinstance(body.get("disk"), dict):
                    c.disk = body["disk"]
            self.changed.notify_all()
        self._report(c)
        return {"ok": True}

    def stream_files(self) -> list[str]:
        return [os.path.join(self.folder, v.name) for v in self.layout.volumes]

    def _report(self, c: Client) -> None:
        self.progress.report(Event("client", c.done, c.total, message=c.state, extra={"client": c.as_json()}))

    # --- the session ----------------------------------------------------------------------------------

    def run(self) -> SessionResult:
        started = self.started = time.monotonic()
        try:
            self._wait_for_clients(started)
            with self.lock:
                self.state = "sending"
                multicast = [c for c in self.clients if c.mode == "multicast" and c.ok is None]
            self.progress.report(Event("send", 0, self.layout.stream_length,
                                       message=f"sending to {len(multicast)} clients by multicast"))
            if multicast:
                self._send(multicast)
            with self.lock:
                self.state = "done"
            self._wait_for_results()
        finally:
            self.close()
        rows = [c.as_json() for c in self.clients]
        result = SessionResult(self.layout.image, str(self.session), time.monotonic() - started,
                               self.layout.stream_length, rows)
        bad = [c for c in self.clients if not c.ok]
        if not self.clients:
            raise _failed("no client joined the session", result)
        if bad:
            names = "; ".join(f"client {c.number} ({c.mac or c.address}) {c.state}"
                              f"{': ' + c.error if c.error else ''}" for c in bad)
            raise _failed(f"{len(bad)} of {len(self.clients)} clients did not succeed: {names}", result)
        return result

    def _wait_for_clients(self, started: float) -> None:
        with self.lock:
            while True:
                self.progress.check()
                left = self.opts.wait - (time.monotonic() - started)
                if (self.opts.clients is not None and len(self.clients) >= self.opts.clients) or left <= 0:
                    return
                self.changed.wait(min(left, 1.0))

    def _send(self, multicast: list[Client]) -> None:
        cmd = ["udp-sender", "--interface", self.opts.interface, "--portbase", str(self.opts.portbase),
               "--min-receivers", str(len(multicast)), "--max-wait", str(SENDER_MAX_WAIT), "--nokbd",
               "--no-progress"]
        if self.opts.max_bitrate:
            cmd += ["--max-bitrate", self.opts.max_bitrate]
        r, w = os.pipe()
        try:
            sender = start(cmd, stdin=r, log=os.path.join(self.opts.log_dir, "rescue-udp-sender.log"))
        finally:
            os.close(r)
        feeder = threading.Thread(target=_feed, args=(w, self.stream_files()), name="session-feed", daemon=True)
        feeder.start()
        try:
            while sender.poll() is None:
                self.progress.check()
                with self.lock:
                    # Every multicast client has its result (they all failed before the end, say): the
                    # sender would wait for receivers that are gone.
                    gone = all(c.ok is not None or time.monotonic() - c.seen > self.opts.stall for c in multicast)
                if gone:
                    sender.kill()
                    break
                time.sleep(0.5)
        finally:
            if sender.poll() is None:
                sender.kill()
            sender.wait()
            feeder.join(timeout=5)

    def _wait_for_results(self) -> None:
        with self.lock:
            while True:
                self.progress.check()
                now = time.monotonic()
                pending = [c for c in self.clients if c.ok is None]
                for c in pending:
                    if now - c.seen > self.opts.stall:
                        c.ok, c.error = False, f"silent for {self.opts.stall:g} s (lost)"
                        self.progress.report(Event("client", message=c.state, extra={"client": c.as_json()}))
                if all(c.ok is not None for c in self.clients):
                    return
                self.changed.wait(1.0)


def _failed(detail: str, result: SessionResult) -> SessionError:
    e = SessionError(detail=detail)
    e.result = result  # type: ignore[attr-defined]  # the CLI prints it with --json, as for other errors
    return e


def _feed(fd: int, paths: list[str]) -> None:
    """Write the stream into udp-sender's stdin; stops quietly when udp-sender is gone."""
    try:
        for path in paths:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
    except OSError:
        pass  # udp-sender ended (killed, or every receiver dropped): the clients report why
    finally:
        os.close(fd)


def _handler(session: Session) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the engine never prints: what matters is reported through the session's events

        def _json(self, code: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/session":
                return self._json(200, session.describe())
            if self.path == "/stream":
                return self._send_files(session.stream_files(), session.layout.stream_length)
            names = {n: os.path.join(session.folder, n) for n, _ in session.layout.manifests}
            if self.path.startswith("/file/") and self.path[len("/file/"):] in names:
                path = names[self.path[len("/file/"):]]
                return self._send_files([path], os.path.getsize(path))
            self._json(404, {"error": "not found"})

        def _send_files(self, paths: list[str], length: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            try:
                for path in paths:
                    with open(path, "rb") as f:
                        while block := f.read(1 << 20):
                            self.wfile.write(block)
            except OSError:
                self.close_connection = True  # the client went away: it reports (or is lost)

        def do_POST(self) -> None:
            try:
                n = int(self.headers.get("Content-Length") or 0)
                if not 0 <= n <= _BODY_LIMIT:
                    raise ValueError("body too large")
                body = json.loads(self.rfile.read(n) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                if self.path == "/join":
                    return self._json(200, session.join(body))
                if self.path in ("/progress", "/result"):
                    return self._json(200, session.update(body, self.path == "/result"))
                self._json(404, {"error": "not found"})
            except (ValueError, TypeError, Error) as e:
                self._json(400, {"error": str(e)})

    return Handler
