"""Helpers of the boot tests: build the rescue system once (cached like the test-disk factory) and boot
it in QEMU (TCG; every run has a timeout) with disks attached, reading back what the guest reported.

The guest reports through a small raw "log disk" (``rescue.log=/dev/vdX``: the run log, NUL-terminated)
and QEMU's isa-debug-exit device (``rescue.debugexit=1``: QEMU exits with 2*(16+status)+1, 33 = success).
A VM booted without an unattended run is driven as a person would over its serial console (`Console`):
what it shows is read back with the terminal's escape sequences taken out, and keys are typed into it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.factory import _locked, cache_dir

ROOT = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
OVMF = Path("/usr/share/OVMF")
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
SUCCESS = 2 * 16 + 1  # isa-debug-exit code of a run that exited 0
MiB = 1 << 20
# What the build reads: a change to any of these makes a new cached build.
INPUTS = ("builder", "linux-live", "core", "rescue")
RUN_SCRIPT = """\
# rescue-run.sh of the test ISO: prove the init found the medium and the frozen CLI runs
ls /run/medium/live
rescue --version
"""


@dataclass(frozen=True)
class Built:
    kernel: Path
    initrd: Path
    iso: Path
    build_seconds: float


def _inputs_hash() -> str:
    h = hashlib.sha256()
    for top in INPUTS:
        for f in sorted((ROOT / top).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def built_live() -> Built:
    """Kernel, initramfs and a test ISO (menu timeout 1 s, serial console, rescue-run.sh on it), built
    with ``rescue-build linux-live`` once per version of the inputs and shared between test runs."""
    out = cache_dir() / f"live-{_inputs_hash()}"
    with _locked(cache_dir() / "live.lock"):
        if not (out / "done").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            script = out / "rescue-run.sh"
            script.write_text(RUN_SCRIPT)
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-c", "from builder.cli import main; main()", "linux-live",
                 "--work", str(cache_dir() / "rescue-build-work"), "--out", str(out / "test.iso"),
                 "--timeout", "1", "--run-script", str(script),
                 "--append", "console=ttyS0,115200n8 rescue.debugexit=1 rescue.log=/dev/vda"],
                cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert proc.returncode == 0, proc.stdout + proc.stderr
            work = cache_dir() / "rescue-build-work"
            shutil.copyfile(work / "vmlinuz", out / "vmlinuz")
            shutil.copyfile(work / "initrd.img", out / "initrd.img")
            (out / "build.log").write_text(proc.stdout)
            (out / "done").write_text(f"{time.monotonic() - t0:.1f}\n")
    return Built(out / "vmlinuz", out / "initrd.img", out / "test.iso", float((out / "done").read_text()))


@dataclass
class Run:
    exit_code: int
    serial: str
    seconds: float


def no_nic(args: list[str]) -> list[str]:
    """No network card unless ``args`` give one: QEMU's default card would reach this machine's network
    through its user-mode NAT, and the guest asks DHCP on every link it has."""
    return [] if any(a in ("-netdev", "-nic", "-net") for a in args) else ["-nic", "none"]


def qemu(args: list[str], timeout: float, prefix: list[str] | None = None) -> Run:
    """Run QEMU (TCG, 1 GiB, no display, serial on stdout) until the guest powers off or exits;
    ``prefix``: what QEMU runs under (``nsenter --net=...``: its tap device is in a test's namespace)."""
    cmd = [*(prefix or []), QEMU, "-accel", "tcg", "-m", "1G", "-nographic", "-no-reboot", "-monitor", "none",
           "-serial", "stdio", *DEBUG_EXIT, *no_nic(args), *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        raise AssertionError(f"VM did not power off within {timeout:.0f} s; serial tail:\n{out[-3000:]}") from None
    return Run(proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace"), time.monotonic() - t0)


def raw_disk(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def read_log(log_disk: Path) -> str:
    """What the guest wrote to the log disk (rescue.log=): text up to the first NUL."""
    data = log_disk.read_bytes()
    return data.split(b"\0", 1)[0].decode(errors="replace")


def virtio(path: Path, readonly: bool = False) -> list[str]:
    return ["-drive", f"file={path},format=raw,if=virtio{',readonly=on' if readonly else ''}"]


def direct_boot(built: Built, disks: list[list[str]], append: str, timeout: float,
                prefix: list[str] | None = None) -> Run:
    """Boot kernel + initramfs directly (no boot loader): the fastest path into the init."""
    args = ["-kernel", str(built.kernel), "-initrd", str(built.initrd), "-append", append]
    for d in disks:
        args += d
    return qemu(args, timeout, prefix)


def firmware(tmp: Path, mode: str) -> list[str]:
    """QEMU options for ``mode``: "bios" (SeaBIOS), "uefi" (OVMF) or "secureboot" (OVMF with
    Microsoft's keys enrolled, so shim signed by Microsoft -> Debian's GRUB and kernel)."""
    if mode == "bios":
        return []
    if mode == "uefi":
        code, vars_ = OVMF / "OVMF_CODE_4M.fd", OVMF / "OVMF_VARS_4M.fd"
        machine: list[str] = []
    else:
        code, vars_ = OVMF / "OVMF_CODE_4M.secboot.fd", OVMF / "OVMF_VARS_4M.ms.fd"
        # the secure-boot build keeps its variables in SMM-protected flash: q35 with SMM is required
        machine = ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
    own_vars = tmp / f"vars-{mode}.fd"
    shutil.copyfile(vars_, own_vars)  # the firmware writes its variables: never into the shared file
    return [*machine, "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={own_vars}"]


def medium(iso: Path, tmp: Path, kind: str) -> list[str]:
    """The ISO as a CD ("cd") or written raw to a USB stick on an xHCI controller ("usb")."""
    if kind == "cd":
        return ["-drive", f"file={iso},format=raw,if=none,media=cdrom,readonly=on,id=cd",
                "-device", "ide-cd,drive=cd,bootindex=0"]
    stick = tmp / "stick.img"
    shutil.copyfile(iso, stick)  # like dd to a stick: the hybrid image is the disk
    return ["-drive", f"file={stick},format=raw,if=none,id=stick", "-device", "qemu-xhci",
            "-device", "usb-storage,drive=stick,bootindex=0"]


# CSI sequences (cursor moves, colours), other two-byte escapes, and the charset switches (ESC ( B)
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[@-_]")
KEYS = {"Up": b"\x1b[A", "Down": b"\x1b[B", "Enter": b"\r", "Escape": b"\x1b"}


def plain(raw: bytes) -> str:
    """What a serial capture says, without the terminal's escape sequences."""
    return _ESCAPES.sub(b"", raw).decode(errors="replace")


class Console:
    """A VM whose serial console is this object: read what it shows (`wait`), type into it (`keys`,
    `type`). Every wait has a timeout (a hang fails the test, it does not stall the run); nothing is
    asserted about how long anything took."""

    def __init__(self, args: list[str], transcript: Path, prefix: list[str] | None = None) -> None:
        cmd = [*(prefix or []), QEMU, "-accel", "tcg", "-m", "1G", "-nographic", "-no-reboot", "-monitor",
               "none", "-serial", "stdio", *DEBUG_EXIT, *no_nic(args), *args]
        self.transcript = transcript  # everything the console showed, for people to read after the run
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._seen = 0  # `wait` looks at what came after the last thing it found
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._raw += chunk

    def text(self) -> str:
        with self._lock:
            return plain(bytes(self._raw))

    def wait(self, text: str, timeout: float) -> str:
        """Wait until ``text`` appears in what the console shows after the last `wait`'s find; returns
        that output (escape sequences removed)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            at = shown.find(text, self._seen)
            if at >= 0:
                found = shown[self._seen:at + len(text)]
                self._seen = at + len(text)
                return found
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._reader.is_alive()):
                self.save()
                raise AssertionError(f"{text!r} never appeared on the serial console; its tail:\n"
                                     f"{shown[-3000:]}")
            time.sleep(0.2)

    def keys(self, *names: str) -> None:
        """Press keys (names of KEYS), one at a time as a person does: each reaches its own screen."""
        for k in names:
            self._send(KEYS[k])
            time.sleep(0.3)

    def type(self, line: str) -> None:
        """Type ``line`` and Enter."""
        self._send(line.encode())
        time.sleep(0.3)
        self.keys("Enter")

    def _send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def exit_code(self, timeout: float) -> int:
        """Wait for the VM to end (it powered off); QEMU's exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.save()
            raise AssertionError(f"VM did not power off within {timeout:.0f} s; its tail:\n"
                                 f"{self.text()[-3000:]}") from None
        self._reader.join(10)
        self.save()
        return code

    def save(self) -> None:
        self.transcript.write_text(self.text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.save()
