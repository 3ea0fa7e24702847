"""Deterministic file content for the test-disk factory (``tests.factory``).

Everything derives from ``(seed, name)`` through ``random.Random``, so a file's bytes do not change when
other files are added or removed. The mix imitates a real Windows 7 install: compressible text and
code-like DLLs, incompressible pictures/videos, zero-heavy images, many tiny files, a fragmented file,
an NTFS-compressed directory, a sparse file, hard links, junctions/symlinks, named streams, hidden+system
attributes, and pagefile.sys/hiberfil.sys.

``Tree`` writes into a directory (an ntfs-3g mount or a staging dir for mtools) and records what it wrote
in ``manifest``, in the same format as ``tests.ntfs3g.file_hashes`` returns, so a test can compare both.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import uuid
import zipfile
from pathlib import Path
from typing import Iterable

from tests.ntfs3g import DIR

MiB = 1 << 20
KiB = 1 << 10

# NTFS file attribute bits (as ntfs-3g's system.ntfs_attrib_be xattr shows them).
ATTR_HIDDEN, ATTR_SYSTEM, ATTR_ARCHIVE, ATTR_COMPRESSED = 0x02, 0x04, 0x20, 0x800
IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK = 0xA0000003, 0xA000000C

class FactoryError(RuntimeError):
    """The factory could not build a disk (bad parameters, missing fixture, tool failure)."""


WORDS = (
    "the of and to in is that for it as with was on be at by this had not are but from or have an they "
    "which one you were her all she there would their we him been has when who will more no if out so "
    "said what up its about into than them can only other new some could time these two may then do "
    "first any my now such like our over man me even most made after also did many before must through "
    "back years where much your way well down should because each just those people how too little state "
    "good very make world still own see men work long get here between both life being under never day "
    "invoice meeting budget project quarterly report holiday family Windows update driver system"
).split()
FOREIGN = ["Größe", "Überweisung", "café", "naïve", "Ελληνικά", "日本語", "привет", "señor", "Zürich", "€uro"]


def rng_for(seed: int, name: str) -> random.Random:
    """A generator private to one file: its bytes depend only on the seed and its name."""
    return random.Random(f"{seed}:{name}")


def seeded_guid(seed: int, what: str) -> str:
    """A GUID (lowercase, dashed) that depends only on the seed and what it names."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}:{what}".encode()).digest()[:16], version=4))


def text(rng: random.Random, size: int, foreign: bool = False) -> bytes:
    """CRLF prose of about ``size`` bytes (UTF-8); compresses ~3x like real documents."""
    vocab = WORDS + FOREIGN if foreign else WORDS
    out: list[str] = []
    total = 0
    while total < size:
        words = rng.choices(vocab, k=rng.randint(6, 18))
        line = " ".join(words).capitalize() + ".\r\n"
        if rng.random() < 0.15:
            line += "\r\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


OPCODES = b"\x48\x8b\x89\x83\xc7\xe8\x0f\x85\x74\x33\xc0\x4c"  # common x64 opcode/ModRM bytes


def pe_image(rng: random.Random, size: int) -> bytes:
    """A DLL/EXE look-alike: MZ/PE header, code made of repeated 'functions', UTF-16 strings, resources.

    Functions are drawn from a small per-file pool, so the file compresses roughly 2-3x, like real code.
    """
    head = bytearray(1024)
    head[0:2] = b"MZ"
    head[0x3C:0x40] = struct.pack("<I", 0x80)
    head[0x40:0x40 + 39] = b"This program cannot be run in DOS mode.\r"
    head[0x80:0x84] = b"PE\x00\x00"
    head[0x84:0x200] = rng.randbytes(0x200 - 0x84)
    pool = [
        b"\x48\x89\x5c\x24\x08\x57\x48\x83\xec\x20"
        + bytes(rng.choice(OPCODES) for _ in range(rng.randint(8, 60)))
        + b"\x48\x83\xc4\x20\x5f\xc3" + b"\xcc" * rng.randint(1, 15)
        for _ in range(64)
    ]
    parts = [bytes(head)]
    total = len(head)
    code_end = size * 6 // 10
    while total < code_end:
        chunk = b"".join(f + rng.randbytes(4) for f in rng.choices(pool, k=64))
        parts.append(chunk)
        total += len(chunk)
    strings = "\0".join(rng.choices(WORDS, k=200)).encode("utf-16-le")
    while total < size * 85 // 100:
        parts.append(strings)
        total += len(strings)
    parts.append(rng.randbytes(max(0, size - total)))  # resources: icons, bitmaps, signatures
    return b"".join(parts)[:size]


def regf_like(rng: random.Random, size: int) -> bytes:
    """A hive-shaped dummy ("regf" base block + "hbin" pages of key-ish text) for hives we don't ship."""
    base = b"regf" + rng.randbytes(0x1FC) + bytes(4096 - 0x200)
    body = bytearray()
    while len(body) < size - 4096:
        page = b"hbin" + struct.pack("<II", len(body), 4096) + bytes(20)
        page += text(rng, 4096 - len(page))
        body += page
    return (base + bytes(body))[:size]


def jpeg(rng: random.Random, size: int) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return head + rng.randbytes(size - len(head) - 2) + b"\xff\xd9"


def media(rng: random.Random, size: int) -> bytes:
    return b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + rng.randbytes(size - 32)


def zero_heavy(rng: random.Random, size: int) -> bytes:
    """Disk-image-like: 1 MiB blocks, about two thirds of them all zeros."""
    blocks = (rng.randbytes(MiB) if rng.random() < 0.35 else bytes(MiB) for _ in range(-(-size // MiB)))
    return b"".join(blocks)[:size]


def office_zip(rng: random.Random, paragraphs: int) -> bytes:
    """A .docx-like zip (deflated XML) with fixed timestamps, so it is byte-for-byte deterministic."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (
            ("[Content_Types].xml", b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/"/>'),
            ("word/document.xml", b"<w:document><w:body>" + b"".join(
                b"<w:p><w:r><w:t>" + text(rng, rng.randint(100, 800)) + b"</w:t></w:r></w:p>"
                for _ in range(paragraphs)) + b"</w:body></w:document>"),
            ("word/media/image1.png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(4, 40) * KiB)),
        ):
            z.writestr(zipfile.ZipInfo(name, date_time=(2012, 3, 4, 5, 6, 8)), data)
    return buf.getvalue()


def reparse_point(tag: int, target: str) -> bytes:
    """system.ntfs_reparse_data for a junction/symlink to ``target`` ("C:\\Users") on the same volume."""
    sub, prn = ("\\??\\" + target).encode("utf-16-le"), target.encode("utf-16-le")
    body = struct.pack("<HHHH", 0, len(sub), len(sub) + 2, len(prn))
    if tag == IO_REPARSE_TAG_SYMLINK:
        body += struct.pack("<I", 0)  # flags: 0 = absolute target
    body += sub + b"\0\0" + prn + b"\0\0"
    return struct.pack("<IHH", tag, len(body), 0) + body


class Tree:
    """Writes files under ``root`` and records ``manifest`` in ``tests.ntfs3g.file_hashes`` format."""

    def __init__(self, root: Path, ntfs: bool) -> None:
        self.root = root
        self.ntfs = ntfs
        self.manifest: dict[str, str] = {}
        self.written = 0  # bytes of file data written so far (deleted files included)

    def mkdir(self, rel: str) -> Path:
        p = self.root / rel
        if not rel:
            return p
        p.mkdir(parents=True, exist_ok=True)
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            self.manifest["/".join(parts[:i])] = DIR
        return p

    def write(self, rel: str, data: bytes | Iterable[bytes]) -> None:
        parent = rel.rpartition("/")[0]
        if parent:
            self.mkdir(parent)
        h = hashlib.sha256()
        with (self.root / rel).open("wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
                h.update(chunk)
                self.written += len(chunk)
        self.manifest[rel] = h.hexdigest()

    def sparse(self, rel: str, pieces: list[tuple[int, bytes]]) -> None:
        """A file holding ``pieces`` at their offsets and holes (never written clusters) in between."""
        self.mkdir(rel.rpartition("/")[0])
        h = hashlib.sha256()
        pos = 0
        with (self.root / rel).open("wb") as f:
            for off, data in sorted(pieces):
                f.seek(off)  # ntfs-3g leaves the skipped range unallocated and marks the file sparse
                f.write(data)
                h.update(bytes(off - pos))
                h.update(data)
                pos = off + len(data)
                self.written += len(data)
        self.manifest[rel] = h.hexdigest()

    def link(self, existing: str, rel: str) -> None:
        """A hard link (WinSxS keeps System32 files as hard links)."""
        self.mkdir(rel.rpartition("/")[0])
        os.link(self.root / existing, self.root / rel)
        self.manifest[rel] = self.manifest[existing]

    def stream(self, rel: str, name: str, data: bytes) -> None:
        """An NTFS named stream (ntfs-3g exposes them as user.* xattrs)."""
        os.setxattr(self.root / rel, "user." + name, data)
        self.manifest[f"{rel}:{name}"] = hashlib.sha256(data).hexdigest()

    def attrib(self, rel: str, add: int) -> None:
        if not self.ntfs:
            return
        p = self.root / rel
        cur = struct.unpack(">I", os.getxattr(p, "system.ntfs_attrib_be"))[0]
        os.setxattr(p, "system.ntfs_attrib_be", struct.pack(">I", cur | add))

    def reparse(self, rel: str, tag: int, target: str) -> None:
        """A junction (directory) or NTFS symlink to ``target`` ("Users") on the same volume."""
        self.mkdir(rel)
        data = reparse_point(tag, "C:\\" + target.replace("/", "\\"))
        os.setxattr(self.root / rel, "system.ntfs_reparse_data", data)
        self.manifest[rel] = f"link:/{target}"

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink()
        self.manifest.pop(rel, None)
