"""The CLI on a real terminal (a pseudo-terminal it has as its controlling terminal, as on the rescue
media's console): passwords asked without echo, typed confirmations, progress lines."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Iterator

import pytest

from core.platform.loops import loop_device
from tests.images import small_disk

ROOT = Path(__file__).resolve().parents[2]
# Generous: Argon2id runs once per password try, on 2 shared cores.
WAIT = 120.0


class Term:
    """One `rescue` run on its own pseudo-terminal (stdin, stdout and stderr; its controlling tty, so
    getpass reads /dev/tty from it); ``expect`` waits for text, ``send`` types a line."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        master, slave = pty.openpty()
        env = dict(os.environ)
        env.pop("RESCUE_PASSWORD", None)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["COLUMNS"], env["LINES"] = "80", "25"

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid (start_new_session)

        self.proc = subprocess.Popen([sys.executable, "-m", "rescue", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, cwd=cwd, start_new_session=True,
                                     preexec_fn=controlling_tty)
        os.close(slave)
        self.master = master
        self.out = ""
        self.seen = 0

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.out += data.decode("utf-8", "replace")
        return True

    def expect(self, text: str) -> None:
        """Wait until ``text`` appears after what the previous expect consumed."""
        deadline = time.monotonic() + WAIT
        while text not in self.out[self.seen:]:
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.out}"
            if not self._read(0.2):
                assert text in self.out[self.seen:], f"ended without {text!r}:\n{self.out}"
        self.seen = self.out.index(text, self.seen) + len(text)

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def wait(self) -> int:
        """Read until the child closes the terminal, then its exit code."""
        deadline = time.monotonic() + WAIT
        while self._read(0.2):
            assert time.monotonic() < deadline, f"still running:\n{self.out}"
        rc = self.proc.wait(WAIT)
        os.close(self.master)
        return rc


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield small_disk(tmp_path_factory.mktemp("term") / "src.img")


def test_new_backup_asks_twice_then_verify_asks_again_after_a_wrong_password(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    t = Term("backup", str(disk), str(folder))
    t.expect("Password (empty: not encrypted):")
    t.send("first secret")
    t.expect("The same password again:")
    t.send("first secreT")  # a typo: both asked again
    t.expect("the two passwords differ")
    t.expect("Password (empty: not encrypted):")
    t.send("first secret")
    t.expect("The same password again:")
    t.send("first secret")
    t.expect("finishing: writing the manifest\r\n")  # said on its own line, not glued to the 100 % line
    assert t.wait() == 0, t.out
    assert "secret" not in t.out  # never echoed
    assert "full image" in t.out

    t = Term("verify", str(folder))
    t.expect("Password:")
    t.send("wrong one")
    t.expect("wrong password; try again")
    t.expect("Password:")
    t.send("first secret")
    assert t.wait() == 0, t.out
    assert ": OK," in t.out and "blocks" in t.out.split("Password:")[-1], t.out
    assert " B / " not in t.out.split("Password:")[-1], t.out  # blocks are not bytes
    assert "secret" not in t.out and "wrong one" not in t.out

    # three wrong passwords: one error line, exit 30
    t = Term("verify", str(folder))
    for _ in range(3):
        t.expect("Password:")
        t.send("nope")
    assert t.wait() == 30, t.out
    assert t.out.count("rescue: error:") == 1 and "Traceback" not in t.out


def test_missing_target_reported_before_the_image_check_and_password(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    env = dict(os.environ, RESCUE_PASSWORD="pw", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "rescue", "backup", str(disk), str(folder)], env=env, check=True,
                   capture_output=True, cwd=ROOT)
    t = Term("restore", str(folder), str(tmp_path / "no-such-disk.img"))
    assert t.wait() == 40, t.out
    assert "does not exist" in t.out and "Password" not in t.out and "checking the volumes" not in t.out, t.out
    # refused, not missing: a read-only file, and the backup folder's own volume
    ro = tmp_path / "ro.img"
    ro.write_bytes(bytes(disk.stat().st_size))
    ro.chmod(0o444)
    volume = sorted(folder.glob("*.v0001"))[0]
    for target, why in ((ro, "read-only"), (volume, "")):
        t = Term("restore", str(folder), str(target))
        assert t.wait() == 40, t.out
        assert why in t.out and "Password" not in t.out and "checking the volumes" not in t.out, t.out


def test_confirmation_asked_again_and_short_name_accepted(disk: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bk"
    subprocess.run([sys.executable, "-m", "rescue", "backup", str(disk), str(folder)], check=True,
                   capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    target = tmp_path / "t.img"
    target.write_bytes(b"")
    os.truncate(target, disk.stat().st_size)  # zeros, as what a restore leaves unwritten is in the source
    with loop_device(str(target), error=RuntimeError) as dev:  # type: ignore[arg-type]
        short = dev.removeprefix("/dev/")
        t = Term("restore", str(folder), dev)
        t.expect(f"Type the target's name ({dev}) to continue:")
        t.send("sdz")  # another disk's name: asked again, nothing written
        t.expect(f"'sdz' is not {dev}; type it again")
        t.expect("to continue:")
        t.send(f"/dev/{short}x")
        t.expect("to continue:")
        t.send(short)
        assert t.wait() == 0, t.out
        assert "restored image" in t.out
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(disk.read_bytes()).digest()

    # three wrong names: nothing written, one error line, exit 3
    target.write_bytes(b"\x55" * disk.stat().st_size)
    t = Term("restore", str(folder), str(target))
    for _ in range(3):
        t.expect("to continue:")
        t.send("t.img")  # a file target has no short name
    assert t.wait() == 3, t.out
    assert "nothing was written" in t.out and t.out.count("rescue: error:") == 1
    assert target.read_bytes() == b"\x55" * disk.stat().st_size
