"""Build (or reuse) the benchmark disk: a sparse MBR disk image with one NTFS partition of realistic data.

The partition starts at 1 MiB and fills the disk; mkntfs formats it through a loop device with the hidden
sectors set to the partition start, and every file is written through ntfs-3g, so the result is what a
real Windows-like volume looks like to the imaging tools. The content is deterministic (a seeded RNG and
an AES-CTR keystream) and made of big buffers, so a 3 GB data set takes about a minute:

- text (logs, source code, XML/INI) cut from a pool of generated lines: compresses ~4-6x;
- DLL/EXE-like binaries: a PE-like header, skewed-byte "code" with repeated motifs, UTF-16 string
  tables and zero padding: compresses ~1.5-2.5x;
- already-compressed media (photos, videos, archives): keystream bytes, incompressible;
- many small files (sources, configs, icons) and a few big ones (videos, a log archive, a VHD-like blob);
- pagefile.sys and hiberfil.sys in the root (hiberfil's first page zeroed as after a resume, so it is not
  "hibr" and an imaging tool may drop it), and deleted files whose clusters are free but not blank.

The image is cached under bench/work/ by its parameters and reused; a half-built one is never reused
(it is renamed into place only when complete).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MiB = 1 << 20
GiB = 1 << 30
PART_START = 1 * MiB
SECTOR = 512
FORMAT_VERSION = 1  # bump when the content recipe changes, so stale caches are rebuilt
WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")
BLOCK = 4 * MiB  # write size through ntfs-3g: big writes keep FUSE overhead low
POOL = 16 * MiB  # text/code pools; bigger than zstd's window so slices do not compress to nothing


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------- content

class Content:
    """Deterministic byte generators for each kind of file."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        key = hashlib.sha256(f"bench-{seed}".encode()).digest()
        self._ctr = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        self._zeros = bytes(BLOCK)
        self.text_pool = self._make_text_pool()
        self.code_pool = self._make_code_pool()

    def noise(self, n: int) -> bytes:
        """Incompressible bytes (AES-CTR keystream: fast and deterministic)."""
        out = bytearray()
        while len(out) < n:
            k = min(BLOCK, n - len(out))
            out += self._ctr.update(self._zeros[:k])
        return bytes(out)

    def _make_text_pool(self) -> bytes:
        r = self.rng
        words = ("the service request handler returned status connection timeout user session "
                 "config value update registry key driver loaded failed success retry cache "
                 "module thread process network device volume snapshot policy").split()
        levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
        comps = ("svchost", "winlogon", "spooler", "wuauserv", "Dhcp", "EventLog", "BITS", "app.core")
        idents = ("buffer", "count", "result", "index", "node", "handle", "offset", "length", "items")
        lines: list[str] = []
        t = 1_300_000_000
        total = 0
        while total < POOL:
            kind = r.random()
            if kind < 0.45:  # log line
                t += r.randint(0, 5)
                lines.append(f"2013-{(t // 2592000) % 12 + 1:02d}-{(t // 86400) % 28 + 1:02d} "
                             f"{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}:{t % 60:02d}.{r.randint(0, 999):03d} "
                             f"{r.choice(levels)} [{r.choice(comps)}:{r.randint(100, 9999)}] "
                             f"{' '.join(r.choices(words, k=r.randint(3, 12)))} "
                             f"id={r.getrandbits(32):08x} ms={r.randint(0, 5000)}\n")
            elif kind < 0.8:  # source code
                a, b = r.choice(idents), r.choice(idents)
                ind = "    " * r.randint(0, 3)
                lines.append(r.choice((
                    f"{ind}if ({a} < {b}) {{\n", f"{ind}{a} = {b} + {r.randint(0, 64)};\n", f"{ind}}}\n",
                    f"{ind}return {a};\n", f"{ind}for (int i = 0; i < {b}; i++) {a}[i] = 0;\n",
                    f"{ind}/* {' '.join(r.choices(words, k=r.randint(2, 8)))} */\n",
                    f"static int {a}_{b}_{r.randint(0, 999)}(struct {a} *{b}, size_t {a}_len)\n")))
            else:  # XML / INI / prose
                lines.append(r.choice((
                    f'  <entry key="{r.choice(idents)}{r.randint(0, 99)}" value="{r.getrandbits(24)}"/>\n',
                    f"{r.choice(idents).capitalize()}{r.randint(0, 9)}={r.randint(0, 100000)}\n",
                    " ".join(r.choices(words, k=r.randint(8, 20))).capitalize() + ".\n")))
            total += len(lines[-1])
        return "".join(lines).encode()[:POOL]

    def _make_code_pool(self) -> bytes:
        # Skewed byte frequencies (x86 code is heavy in 0x00, 0xFF, REX prefixes, MOV/CALL/JMP opcodes)
        # via a translation table over uniform bytes, plus recurring motifs (prologues, thunks).
        hot = b"\x00" * 40 + b"\xff" * 12 + b"\x48" * 14 + b"\x89" * 10 + b"\x8b" * 10 + b"\xe8" * 6 + \
            b"\x0f" * 6 + b"\x24" * 5 + b"\x44" * 5 + b"\xc3" * 3 + b"\x4c" * 5 + b"\x83" * 5
        table = bytes(hot[i] if i < len(hot) else i for i in range(256))
        raw = self.noise(POOL).translate(table)
        motifs = [self.noise(self.rng.randint(16, 96)).translate(table) for _ in range(256)]
        out = bytearray()
        pos = 0
        while pos < POOL:
            n = self.rng.randint(64, 1024)
            out += raw[pos:pos + n]
            out += self.rng.choice(motifs)
            pos += n
        return bytes(out[:POOL])

    def _slices(self, pool: bytes, n: int, lo: int, hi: int) -> bytes:
        out = bytearray()
        r = self.rng
        while len(out) < n:
            k = min(r.randint(lo, hi), n - len(out))
            p = r.randrange(0, len(pool) - k)
            out += pool[p:p + k]
        return bytes(out)

    def text(self, n: int) -> bytes:
        return self._slices(self.text_pool, n, 2048, 65536)

    def binary(self, n: int) -> bytes:
        """A PE-like file: header, code, a UTF-16 string table, resources (noise), zero padding."""
        r = self.rng
        head = (b"MZ\x90\x00" + bytes(56) + b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21"
                b"This program cannot be run in DOS mode.\r\r\n$" + bytes(64) + b"PE\x00\x00")
        head = head.ljust(1024, b"\x00")
        out = bytearray(head[:n])
        while len(out) < n:
            part = r.random()
            k = min(n - len(out), r.randint(4096, 256 * 1024))
            if part < 0.6:
                out += self._slices(self.code_pool, k, 256, 16384)
            elif part < 0.78:
                out += self._slices(self.text_pool, k // 2, 64, 2048).decode("latin-1").encode("utf-16-le")[:k]
            elif part < 0.85:
                out += self.noise(k)
            else:
                out += bytes(min(k, r.randint(512, 16384)))
        return bytes(out[:n])

    def memory(self, n: int) -> bytes:
        """pagefile/hiberfil-like: memory pages of code, data, zeros and noise."""
        out = bytearray()
        r = self.rng
        while len(out) < n:
            k = min(n - len(out), 64 * 4096)
            c = r.random()
            out += self.binary(k) if c < 0.45 else self.noise(k) if c < 0.7 else \
                self.text(k) if c < 0.85 else bytes(k)
        return bytes(out)


# ------------------------------------------------------------------------------------------- file plan

@dataclass
class FileSpec:
    path: str
    kind: str  # text | binary | media | memory
    size: int


def plan_files(data: int, rng: random.Random) -> tuple[list[FileSpec], list[FileSpec]]:
    """(files to keep, files written and then deleted) summing to about ``data`` bytes."""
    files: list[FileSpec] = []

    def fill(budget: int, make: Callable[[int], FileSpec]) -> None:
        total, i = 0, 0
        while total < budget:
            f = make(i)
            f.size = min(f.size, max(1, budget - total))
            files.append(f)
            total += f.size
            i += 1

    def logsize() -> int:
        return int(2 ** rng.uniform(10, 17))  # 1 KiB .. 128 KiB, log-uniform: most files are small

    # Big files (~30%): two videos, a VHD-like blob, one log archive.
    files.append(FileSpec("Users/bench/Videos/holiday-2012.mkv", "media", int(data * 0.11)))
    files.append(FileSpec("Users/bench/Videos/wedding.mp4", "media", int(data * 0.08)))
    files.append(FileSpec("Users/bench/VirtualMachines/xp-mode.vhd", "binary", int(data * 0.06)))
    files.append(FileSpec("ProgramData/Logs/archive/server-2012.log", "text", int(data * 0.05)))
    # Media: photos, music, installers' archives (~17%).
    fill(int(data * 0.10), lambda i: FileSpec(f"Users/bench/Pictures/{2008 + i % 5}/IMG_{i:05d}.JPG", "media",
                                              rng.randint(1, 6) * MiB + rng.randrange(MiB)))
    fill(int(data * 0.07), lambda i: FileSpec(f"Users/bench/Music/album{i // 12:03d}/track{i % 12:02d}.mp3",
                                              "media", rng.randint(3, 9) * MiB))
    # Binaries (~25%): System32-like DLLs (many small, some large) and program folders.
    fill(int(data * 0.15), lambda i: FileSpec(f"Windows/System32/lib{i:05d}.dll", "binary",
                                              int(2 ** rng.uniform(13, 24))))
    fill(int(data * 0.10), lambda i: FileSpec(f"Program Files/App{i // 40:02d}/bin/module{i:04d}."
                                              f"{'exe' if i % 7 == 0 else 'dll'}", "binary",
                                              int(2 ** rng.uniform(14, 23))))
    # Text (~20%): logs, then source trees and configs (many small files).
    fill(int(data * 0.10), lambda i: FileSpec(f"ProgramData/Logs/{i // 100:02d}/event{i:05d}.log", "text",
                                              int(2 ** rng.uniform(15, 24))))
    fill(int(data * 0.06), lambda i: FileSpec(f"Users/bench/src/project{i // 500:02d}/dir{i // 25 % 20:02d}/"
                                              f"file{i:05d}.{rng.choice(('c', 'h', 'py', 'cs', 'js'))}",
                                              "text", logsize()))
    fill(int(data * 0.02), lambda i: FileSpec(f"Windows/winsxs/cfg{i // 200:03d}/setting{i:05d}."
                                              f"{rng.choice(('xml', 'ini', 'manifest'))}", "text", logsize()))
    # Documents (zip-based office files: mostly incompressible) and installer packages.
    fill(int(data * 0.05), lambda i: FileSpec(f"Users/bench/Documents/{i // 50:02d}/report{i:04d}."
                                              f"{rng.choice(('docx', 'xlsx', 'pdf'))}", "media",
                                              int(2 ** rng.uniform(14, 22))))
    fill(int(data * 0.04), lambda i: FileSpec(f"Windows/Installer/{i:04x}.msi", "binary",
                                              int(2 ** rng.uniform(18, 25))))
    # Small binaries (icons, caches): many tiny files.
    fill(int(data * 0.01), lambda i: FileSpec(f"Users/bench/AppData/Local/cache/{i // 300:02d}/c{i:05d}.bin",
                                              rng.choice(("media", "binary")), int(2 ** rng.uniform(9, 15))))
    deleted: list[FileSpec] = []
    for i in range(6):  # ~5%: files the user deleted (free clusters that are not blank)
        deleted.append(FileSpec(f"Users/bench/Downloads/old{i}.{('zip', 'iso', 'log')[i % 3]}",
                                ("media", "binary", "text")[i % 3], int(data * 0.05 / 6)))
    return files, deleted


# ----------------------------------------------------------------------------------------------- build

def write_file(root: str, spec: FileSpec, content: Content) -> None:
    path = os.path.join(root, spec.path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    gen = {"text": content.text, "binary": content.binary, "media": content.noise, "memory": content.memory}
    with open(path, "wb", buffering=0) as f:
        left = spec.size
        while left > 0:
            k = min(BLOCK, left)
            f.write(gen[spec.kind](k))
            left -= k


def disk_path(size: int, data: int, seed: int, pagefile: int, hiberfil: int) -> str:
    return os.path.join(WORK, f"disk-{size // MiB}M-{data // MiB}M-p{pagefile // MiB}-h{hiberfil // MiB}-s{seed}"
                              f"-v{FORMAT_VERSION}.img")


def build(size: int, data: int, seed: int, pagefile: int, hiberfil: int, log: Callable[[str], None]) -> str:
    path = disk_path(size, data, seed, pagefile, hiberfil)
    if os.path.exists(path):
        log(f"reusing {path}")
        return path
    os.makedirs(WORK, exist_ok=True)
    tmp = path + ".building"
    started = time.monotonic()
    with open(tmp, "wb") as f:
        f.truncate(size)  # sparse
    part_size = (size - PART_START) // MiB * MiB
    subprocess.run(["sfdisk", "--quiet", tmp], check=True, capture_output=True, text=True,
                   input=f"label: dos\nlabel-id: 0x5eedbe0c\nstart={PART_START // SECTOR}, "
                         f"size={part_size // SECTOR}, type=7, bootable\n")
    loop = run("losetup", "-f", "--show", "-o", str(PART_START), "--sizelimit", str(part_size), tmp)
    mnt = tempfile.mkdtemp(prefix="bench-ntfs-")
    mounted = False
    try:
        run("mkntfs", "-f", "-q", "-L", "BENCH", "-p", str(PART_START // SECTOR), "-H", "255", "-S", "63", loop)
        run("ntfs-3g", "-o", "big_writes", loop, mnt)
        mounted = True
        content = Content(seed)
        rng = random.Random(seed + 1)
        files, deleted = plan_files(data, rng)
        rng.shuffle(files)  # interleave kinds on disk, as years of use do
        half = len(files) // 2
        for spec in deleted:
            write_file(mnt, spec, content)
        written = sum(f.size for f in deleted)
        for i, spec in enumerate(files):
            if i == half:  # delete midway: later files reuse some of the freed clusters
                for d in deleted:
                    os.unlink(os.path.join(mnt, d.path))
            write_file(mnt, spec, content)
            written += spec.size
            if i % 2000 == 0:
                log(f"  {i}/{len(files)} files, {written / MiB:.0f} MiB, {time.monotonic() - started:.0f} s")
        write_file(mnt, FileSpec("pagefile.sys", "memory", pagefile), content)
        # hiberfil.sys after a resume: Windows zeroes the header, so it does not start with "hibr".
        hib = os.path.join(mnt, "hiberfil.sys")
        write_file(mnt, FileSpec("hiberfil.sys", "memory", hiberfil), content)
        with open(hib, "r+b") as f:
            f.write(bytes(4096))
        log(f"  {len(files)} files + {len(deleted)} deleted, {written / MiB:.0f} MiB of data, pagefile "
            f"{pagefile // MiB} MiB, hiberfil {hiberfil // MiB} MiB")
    finally:
        if mounted:
            subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)
        subprocess.run(["losetup", "-d", loop], check=True)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    log(f"built {path} in {time.monotonic() - started:.0f} s")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="8G", help="disk size (default 8G)")
    ap.add_argument("--data", default="3000M", help="file data written through ntfs-3g (default 3000M)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pagefile", default=None, help="pagefile.sys size (default min(512M, size/16))")
    ap.add_argument("--hiberfil", default=None, help="hiberfil.sys size (default min(256M, size/32))")
    a = ap.parse_args(argv)
    size, data = parse_size(a.size), parse_size(a.data)
    pagefile = parse_size(a.pagefile) if a.pagefile else min(512 * MiB, size // 16)
    hiberfil = parse_size(a.hiberfil) if a.hiberfil else min(256 * MiB, size // 32)
    print(build(size, data, a.seed, pagefile, hiberfil, lambda m: print(m, file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
