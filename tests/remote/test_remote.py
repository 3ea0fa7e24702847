"""Issue 16: backup folders on SFTP (OpenSSH's sshd through sshfs) and S3 (SeaweedFS through rclone).

The servers are real and listen only on 127.0.0.1 inside a network namespace each module creates
(tests/remote/servers.py); the CLI runs inside it. For each backend: an encrypted, split backup,
list, verify, a bit-exact restore, `rescue mount` of the image; the server killed in the middle of a
backup (one line, exit 11, the partial image never complete, the earlier one intact, the next backup
works); wrong credentials (exit 12); the secrets absent from `ps` and from what the CLI printed. SFTP
also: an unknown host key refused, and the SFTP requests sshfs made to commit (fsync@openssh.com,
posix-rename@openssh.com) read from the server's own log.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import need_root_tools
from tests.crash.crashlib import dense_disk, one_error_line
from tests.remote.servers import Netns, Seaweed, Sshd

pytestmark = [pytest.mark.root, pytest.mark.slow]
PASSWORD = "correct horse remote"


class Backend:
    """One server in its namespace, and how the CLI names a folder on it."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.ns = Netns()
        self.home = work / "home"  # an empty ~/.ssh: the host key is known only through --accept-host-key
        self.home.mkdir()
        self.creds = work / "credentials"
        self.server: Sshd | Seaweed
        if kind == "sftp":
            self.server = Sshd(self.ns, work / "sshd")
            self.root = work / "srv"  # what the SFTP server stores, seen from here
            self.root.mkdir()
            self.creds.write_text(f"# the user's key\nidentity = {self.server.work}/user_key\n")
            self.secret = (self.server.work / "user_key").read_text().splitlines()[1]
        else:
            self.server = Seaweed(self.ns, work / "weed")
            self.creds.write_text(f"access_key_id = {Seaweed.ACCESS_KEY}\nsecret_access_key = {self.server.secret}\n")
            self.secret = self.server.secret
        os.chmod(self.creds, 0o600)

    def url(self, name: str) -> str:
        if self.kind == "sftp":
            return f"sftp://root@127.0.0.1:{Sshd.PORT}{self.root}/{name}"
        return f"s3://backups/{name}"

    def opts(self) -> list[str]:
        o = ["--credentials-file", str(self.creds)]
        if isinstance(self.server, Sshd):
            o += ["--accept-host-key", self.server.fingerprint]
        else:
            o += ["--s3-endpoint", self.server.endpoint]
        return o

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "RESCUE_PASSWORD": PASSWORD}

    def rescue(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self.ns.rescue(*args, env=self.env())
        assert self.secret not in r.stdout + r.stderr, "a secret was printed"
        return r

    def names(self, name: str) -> list[str]:
        """The files of folder ``name`` as the server holds them (not through our mount)."""
        if self.kind == "sftp":
            d = self.root / name
            return sorted(os.listdir(d)) if d.is_dir() else []
        assert isinstance(self.server, Seaweed)
        r = self.server.rclone("lsf", f"w:backups/{name}")
        return sorted(r.stdout.split()) if r.returncode == 0 else []

    def close(self) -> None:
        self.server.kill()
        self.ns.close()


@pytest.fixture(scope="module", params=["sftp", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    need_root_tools("ip", "nsenter", "sshfs", "rclone", "fusermount3")
    if request.param == "sftp":
        need_root_tools("/usr/sbin/sshd", "ssh-keyscan")
    b = Backend(request.param, tmp_path_factory.mktemp(f"remote-{request.param}"))
    try:
        yield b
    finally:
        b.close()


def random_disk(path: Path, mib: int, seed: int) -> Path:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(1 << 20))
    return path


def our_mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line for line in f if "/run/rescue/remote" in line]


def test_backup_list_verify_restore_mount(backend: Backend, tmp_path: Path) -> None:
    src = random_disk(tmp_path / "src.img", 24, 1)
    url = backend.url("pc1")
    r = backend.rescue("backup", str(src), url, "--split", "8M", "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    image = json.loads(r.stdout)["id"]
    volumes = [n for n in backend.names("pc1") if n.startswith(image + ".v")]
    assert len(volumes) >= 3 and f"{image}.manifest" in backend.names("pc1"), backend.names("pc1")
    assert not [n for n in backend.names("pc1") if n.endswith(".partial")]

    r = backend.rescue("list", url, "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads(r.stdout)
    assert entry["id"] == image and entry["complete"] and entry["encrypted"], entry

    r = backend.rescue("verify", url, *backend.opts())
    assert r.returncode == 0, r.stderr

    out = tmp_path / "out.img"
    out.write_bytes(b"")
    os.truncate(out, src.stat().st_size)
    r = backend.rescue("restore", url, str(out), "--yes", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes(), "restore is not bit-exact"

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = backend.rescue("mount", url, str(mnt), "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    try:
        assert len(our_mounts()) == 1, "the remote folder must stay mounted for the image's server"
        with open(mnt / ".raw" / "disk", "rb") as f, open(src, "rb") as g:
            while True:
                a, b = f.read(1 << 20), g.read(1 << 20)
                assert a == b, "the mounted image differs from the source"
                if not a:
                    break
        # while sshfs or rclone serves the folder: no secret in any process's arguments
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
        name = "sshfs" if backend.kind == "sftp" else "rclone"
        client = [a for a in ps.splitlines() if a.split()[0].rsplit("/", 1)[-1] == name]
        assert client, f"no {name} running"
        assert backend.secret not in ps and PASSWORD not in ps
    finally:
        u = backend.rescue("umount", str(mnt))
    assert u.returncode == 0, u.stderr
    assert our_mounts() == [], "rescue umount left the remote folder mounted"
    if backend.kind == "sftp":
        # sshfs committed through OpenSSH's extensions (the server's log of every SFTP request)
        assert isinstance(backend.server, Sshd)
        log = backend.server.sftp_log.read_text(errors="replace")
        partial = f'{backend.root}/pc1/{image}.manifest.partial"'
        assert f'fsync "{backend.root}/pc1/{image}.manifest.partial"' in log, log[-2000:]
        assert f'posix-rename old "{backend.root}/pc1/{image}.manifest.partial" new ' \
               f'"{backend.root}/pc1/{image}.manifest"' in log, log[-2000:]
        assert log.index(f'fsync "{backend.root}/pc1/{image}.manifest.partial"') < \
            log.index(f'posix-rename old "{backend.root}/pc1/{image}.manifest.partial"'), partial


def kill_server_when(backend: Backend, p: subprocess.Popen[str], ready: Callable[[], bool],
                     never: str) -> tuple[str, str]:
    """Kill the server once ``ready()`` (within 2 minutes, else ``never`` fails the test) while ``p``
    runs; ``p``'s output. The server is started again afterwards, whatever happened."""
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, never
            time.sleep(0.01)
        backend.server.kill()
        return p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if backend.server.proc is None:
            backend.server.start()


def only_earlier_complete(backend: Backend, url: str, earlier: str) -> None:
    """After a failed backup: ``earlier`` is listed complete and verifies, no other image is complete."""
    r = backend.rescue("list", url, "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    entries = {e["id"]: e for e in json.loads(r.stdout)}
    assert entries[earlier]["complete"], entries
    assert all(not e["complete"] for i, e in entries.items() if i != earlier), "a partial image is listed complete"
    r = backend.rescue("verify", url, "--image", earlier, *backend.opts())
    assert r.returncode == 0, r.stderr


def test_server_killed_in_the_middle_of_a_backup(backend: Backend, tmp_path: Path) -> None:
    first = random_disk(tmp_path / "first.img", 9, 2)
    url = backend.url("pc2")
    r = backend.rescue("backup", str(first), url, "--split", "8M", "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    earlier = json.loads(r.stdout)["id"]

    big = random_disk(tmp_path / "big.img", 200, 3)
    p = backend.ns.start_rescue("backup", str(big), url, "--split", "8M", *backend.opts(), env=backend.env())
    # killed once the new image's first volume is on the server: in the middle, not before
    def first_volume_written() -> bool:
        return len([n for n in backend.names("pc2") if n.endswith(".v0001")]) >= 2

    out, err = kill_server_when(backend, p, first_volume_written, "the second backup wrote no volume")
    assert p.returncode == 11, (p.returncode, err)
    line = one_error_line(err)
    assert url in line and "connection was lost" in line, line
    assert backend.secret not in out + err

    only_earlier_complete(backend, url, earlier)
    # the next backup works (the dead one's lock is this boot's and its pid is gone: stale)
    r = backend.rescue("backup", str(first), url, "--split", "8M", "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    r = backend.rescue("verify", url, *backend.opts())
    assert r.returncode == 0, r.stderr


def test_wrong_credentials(backend: Backend, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    if isinstance(backend.server, Sshd):
        bad.write_text(f"identity = {backend.server.work}/other_key\n")
    else:
        bad.write_text(f"access_key_id = {Seaweed.ACCESS_KEY}\nsecret_access_key = not-the-secret\n")
    opts = [o if o != str(backend.creds) else str(bad) for o in backend.opts()]
    r = backend.rescue("list", backend.url("pc1"), *opts)
    assert r.returncode == 12, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert "refused the" in line, line
    assert "not-the-secret" not in line
    assert our_mounts() == []


@pytest.mark.parametrize("backend", ["sftp"], indirect=True)  # host keys are SFTP's
def test_unknown_host_key_refused(backend: Backend) -> None:
    assert isinstance(backend.server, Sshd)
    base = ["--credentials-file", str(backend.creds)]
    r = backend.rescue("list", backend.url("pc1"), *base)
    assert r.returncode == 12, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert "not in known_hosts" in line and backend.server.fingerprint in line, line
    wrong = "SHA256:" + "A" * 43
    r = backend.rescue("list", backend.url("pc1"), *base, "--accept-host-key", wrong)
    assert r.returncode == 12, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert "refused" in line and backend.server.fingerprint in line, line
    assert our_mounts() == []


def test_lock_of_another_machine_on_the_share(backend: Backend, tmp_path: Path) -> None:
    """Two technicians, one share: the other machine's lock (same hostname, as every stick of the
    media has, and a pid that is dead here) stops the backup; `rescue unlock` clears it."""
    from core.engine.repo import host_identity

    holder = {**host_identity(), "machine_id": "a" * 32, "boot_id": "b" * 32, "pid": 999999, "time": time.time()}
    text = json.dumps(holder)
    if isinstance(backend.server, Sshd):
        (backend.root / "pc3").mkdir()
        (backend.root / "pc3" / "rescue.lock").write_text(text)
    else:
        assert backend.server.rclone("rcat", "w:backups/pc3/rescue.lock", input=text).returncode == 0
    src = random_disk(tmp_path / "src.img", 2, 4)
    url = backend.url("pc3")
    r = backend.rescue("backup", str(src), url, *backend.opts())
    assert r.returncode == 8, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert url in line and "pid 999999" in line and "rescue unlock" in line, line
    assert backend.names("pc3") == ["rescue.lock"]
    r = backend.rescue("unlock", url, "--yes", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert backend.names("pc3") == []
    r = backend.rescue("backup", str(src), url, "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] + ".manifest" in backend.names("pc3")


def test_incremental_merge_prune(backend: Backend, tmp_path: Path) -> None:
    """The commands that rename and delete on the share: a chain merged into a synthetic full
    image (written, committed, then the chain removed), pruned, and the latest state restored."""
    src = random_disk(tmp_path / "src.img", 12, 5)
    url = backend.url("pc4")
    ids = []
    for n, mode in enumerate(["", "--incremental", "--incremental"]):
        if n:
            with open(src, "r+b") as f:  # a few changed blocks each time
                f.seek(n * (1 << 20))
                f.write(random.Random(n).randbytes(64 << 10))
        r = backend.rescue("backup", str(src), url, "--split", "8M", "--json", *([mode] if mode else []),
                           *backend.opts())
        assert r.returncode == 0, r.stderr
        ids.append(json.loads(r.stdout)["id"])
    r = backend.rescue("merge", url, "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)["id"]
    r = backend.rescue("prune", url, "--keep-last", "1", "--yes", "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    r = backend.rescue("list", url, "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert [(e["id"], e["complete"]) for e in json.loads(r.stdout)] == [(merged, True)], r.stdout
    assert {n.split(".")[0] for n in backend.names("pc4")} == {merged}, backend.names("pc4")
    out = tmp_path / "out.img"
    out.write_bytes(b"")
    os.truncate(out, src.stat().st_size)
    r = backend.rescue("restore", url, str(out), "--yes", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes(), "the merged image does not restore the last state"


@pytest.mark.parametrize("backend", ["sftp"], indirect=True)  # a password login is SFTP's
def test_sftp_password_login(backend: Backend, tmp_path: Path) -> None:
    """The password reaches sshfs on stdin: absent from `ps` while the folder is mounted, and from
    the output; a wrong one is exit 12 in one line."""
    assert isinstance(backend.server, Sshd)
    # the user's folder where that user can reach it (pytest's own folders are root's, 0700)
    top = Path(tempfile.mkdtemp(prefix="rescue-sftp-pw-"))
    os.chmod(top, 0o755)
    folder = top / "pw"
    folder.mkdir()
    os.chown(folder, Sshd.USER_ID, Sshd.USER_ID)
    try:
        password_run(backend, folder, tmp_path)
    finally:
        shutil.rmtree(top)


def password_run(backend: Backend, folder: Path, tmp_path: Path) -> None:
    assert isinstance(backend.server, Sshd)
    creds = tmp_path / "cred"
    creds.write_text(f"password = {backend.server.password}\n")
    url = f"sftp://{Sshd.USER}@127.0.0.1:{Sshd.PORT}{folder}"
    opts = ["--credentials-file", str(creds), "--accept-host-key", backend.server.fingerprint]
    src = random_disk(tmp_path / "src.img", 3, 6)
    r = backend.ns.rescue("backup", str(src), url, "--json", *opts, env=backend.env())
    assert r.returncode == 0, r.stderr
    assert backend.server.password not in r.stdout + r.stderr
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = backend.ns.rescue("mount", url, str(mnt), *opts, env=backend.env())
    assert r.returncode == 0, r.stderr
    try:
        assert (mnt / ".raw" / "disk").read_bytes() == src.read_bytes()
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
        assert any(a.split()[0].endswith("sshfs") for a in ps.splitlines()[1:] if a.split()), ps
        assert backend.server.password not in ps
    finally:
        assert backend.ns.rescue("umount", str(mnt)).returncode == 0
    creds.write_text("password = not-the-password\n")
    r = backend.ns.rescue("list", url, *opts, env=backend.env())
    assert r.returncode == 12, (r.returncode, r.stderr)
    line = one_error_line(r.stderr)
    assert "refused the credentials" in line and "not-the-password" not in line, line


def vm_hwm(pid: int) -> int | None:
    """Peak resident memory of a process, bytes; None once it has exited (a zombie has no memory line)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return None


def mount_clients(name: str) -> list[int]:
    """The sshfs or `rclone mount` processes: not a short-lived rclone another step ran (a listing)."""
    pids = [int(p) for p in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()]
    out = []
    for pid in pids:
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except FileNotFoundError:
            continue
        if name == "sshfs" or b"mount" in argv[1:]:  # `rclone [options] mount ...`
            out.append(pid)
    return out


def test_reading_streams_with_bounded_memory(backend: Backend, tmp_path: Path) -> None:
    """A 160 MiB image read whole through `rescue mount`: neither the client (sshfs, rclone) nor the
    image's server holds more than a bounded part of it (rclone: --buffer-size per open file)."""
    size = 160 << 20
    src = random_disk(tmp_path / "src.img", size >> 20, 7)
    url = backend.url("pc5")
    r = backend.rescue("backup", str(src), url, "--split", "16M", *backend.opts())
    assert r.returncode == 0, r.stderr
    src.unlink()  # (room in the temp folder; the content is checked by digest below)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = backend.rescue("mount", url, str(mnt), *backend.opts())
    assert r.returncode == 0, r.stderr
    try:
        name = "sshfs" if backend.kind == "sftp" else "rclone"
        pids = mount_clients(name)
        assert pids, f"no {name} serves the folder"
        server = json.loads((mnt / ".raw" / "mount.json").read_text())["pid"]
        with open(mnt / ".raw" / "disk", "rb") as f:
            digest = hashlib.blake2b()
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        peaks = {f"{name} {p}": vm_hwm(p) for p in pids}
        peaks["image server"] = vm_hwm(server)
    finally:
        assert backend.ns.rescue("umount", str(mnt)).returncode == 0
    want = hashlib.blake2b()
    rnd = random.Random(7)
    for _ in range(size >> 20):
        want.update(rnd.randbytes(1 << 20))
    assert digest.digest() == want.digest(), "the mounted image differs from the source"
    # A client that exited meanwhile (sshfs's parent once it has forked its daemon) has nothing to measure;
    # the one serving the mount and the image server must be measured.
    measured = {k: v for k, v in peaks.items() if v is not None}
    assert "image server" in measured and any(k.startswith(name) for k in measured), peaks
    assert all(v < 128 << 20 for v in measured.values()), {k: v >> 20 for k, v in measured.items()}


def read_bytes(pid: int) -> int:
    """What a process has read through read calls so far (its files on the share among them)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return 0


def test_server_killed_in_the_middle_of_a_restore(backend: Backend, tmp_path: Path) -> None:
    """The share drops while a restore reads it: one line, exit 11, the target without a partition
    table (no tool takes it for a good copy); the rerun finishes bit-exact."""
    src = dense_disk(tmp_path / "src.img")
    url = backend.url("pc6")
    r = backend.rescue("backup", str(src), url, "--split", "8M", "--json", *backend.opts())
    assert r.returncode == 0, r.stderr
    image = json.loads(r.stdout)["id"]
    target = tmp_path / "target.img"
    target.write_bytes(b"")
    os.truncate(target, src.stat().st_size)
    p = backend.ns.start_rescue("restore", url, str(target), "--yes", "--image", image, *backend.opts(),
                                env=backend.env())
    # killed once the restore has read 24 of the image's 68 MiB (nsenter became the CLI: same pid)
    out, err = kill_server_when(backend, p, lambda: read_bytes(p.pid) >= 24 << 20, "the restore read nothing")
    assert p.returncode == 11, (p.returncode, err)
    # (the plan was shown before: the error is the one error line, and the last)
    errors = [ln for ln in err.splitlines() if ln.startswith("rescue: error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err, err
    assert url in errors[0] and "connection was lost" in errors[0], errors[0]
    assert target.read_bytes()[510:512] != b"\x55\xaa", "the target has a partition table"
    r = backend.rescue("restore", url, str(target), "--yes", *backend.opts())
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == src.read_bytes()
    # and a file taken out of the image on the share (NTFS through the image's mount)
    r = backend.rescue("extract", url, "notes.txt", "--to", str(tmp_path / "out"), "--partition", "1",
                       *backend.opts())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "notes.txt").read_bytes() == b"".join(b"line %d of the notes\r\n" % i
                                                                     for i in range(20000))
