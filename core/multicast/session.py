"""What a session is: its address (``ADDR:PORT/DIGEST``), the files it serves, the order of its stream.

The stream is the volume files of every image of the restore point's chain, point first, each image's
volumes in order: the order in which `core.engine.restore` reads chunks (image by image, chunk by chunk),
so a client consumes it front to back. `describe` is the server's side (from a checked `Chain`);
`Layout` is both sides' view of it: where each volume starts in the stream.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..engine.chain import Chain
from ..errors import UsageError
from ..format.c_image import VolumeHeader, VolumeTrailer

PROTOCOL = 1
DEFAULT_PORT = 8090
# udpcast's default port base is 9000; ours is apart from it, so that a stray udpcast on the segment
# (another tool's session) is not taken for ours.
DEFAULT_PORTBASE = 9720
_SESSION_RE = re.compile(r"^([0-9A-Za-z.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})/([0-9a-f]{64})$")


@dataclass(frozen=True)
class Address:
    """``ADDR:PORT/DIGEST``: where the control channel listens and which manifest the session is."""

    host: str
    port: int
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Address:
        m = _SESSION_RE.match(text.strip())
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UsageError(detail=f"{text!r} is not a session address (ADDR:PORT/64 hex digits of the "
                                    "image's manifest digest, as rescue serve prints it)")
        return cls(m.group(1).strip("[]"), int(m.group(2)), bytes.fromhex(m.group(3)))

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.digest.hex()}"


@dataclass(frozen=True)
class VolumeEntry:
    name: str
    length: int
    header: bytes  # the volume's first 128 bytes
    trailer: bytes  # its last 96 bytes


@dataclass(frozen=True)
class Layout:
    """The files of a session: the chain's manifests and the volumes in stream order."""

    image: str
    digest: bytes
    manifests: list[tuple[str, int]]
    volumes: list[VolumeEntry]

    @property
    def stream_length(self) -> int:
        return sum(v.length for v in self.volumes)

    def starts(self) -> list[int]:
        out, pos = [], 0
        for v in self.volumes:
            out.append(pos)
            pos += v.length
        return out

    def as_json(self) -> dict[str, Any]:
        return {"version": PROTOCOL, "image": self.image, "digest": self.digest.hex(),
                "manifests": [{"name": n, "length": size} for n, size in self.manifests],
                "volumes": [{"name": v.name, "length": v.length, "header": v.header.hex(),
                             "trailer": v.trailer.hex()} for v in self.volumes],
                "stream_length": self.stream_length}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Layout:
        """The server's description, shape-checked only: the restore checks its content."""
        try:
            if d["version"] != PROTOCOL:
                raise ValueError(f"protocol version {d['version']}")
            manifests = [(_name(m["name"]), int(m["length"])) for m in d["manifests"]]
            volumes = [VolumeEntry(_name(v["name"]), int(v["length"]), bytes.fromhex(v["header"]),
                                   bytes.fromhex(v["trailer"])) for v in d["volumes"]]
            for v in volumes:
                if len(v.header) != VolumeHeader.size or len(v.trailer) != VolumeTrailer.size \
                        or v.length < VolumeHeader.size + VolumeTrailer.size:
                    raise ValueError(f"volume {v.name} is described wrongly")
            return cls(_name(d["image"]), bytes.fromhex(d["digest"]), manifests, volumes)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the server's session description is malformed ({e})") from None


def _name(text: object) -> str:
    # File names become names in our FUSE folder: nothing that could be a path.
    if not isinstance(text, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.\-]{0,80}", text):
        raise ValueError(f"bad file name {text!r}")
    return text


def describe(chain: Chain, folder: str) -> Layout:
    """The session's files, from a chain that `Chain` opened (so every volume was checked already)."""
    manifests: list[tuple[str, int]] = []
    volumes: list[VolumeEntry] = []
    for m in chain.manifests:
        path = os.path.join(folder, f"{m.image_id}.manifest")
        manifests.append((os.path.basename(path), os.path.getsize(path)))
        for v in m.meta.volumes:
            with open(os.path.join(folder, v.name), "rb") as f:
                header = f.read(VolumeHeader.size)
                f.seek(v.length - VolumeTrailer.size)
                trailer = f.read(VolumeTrailer.size)
            volumes.append(VolumeEntry(v.name, v.length, header, trailer))
    return Layout(chain.point.image_id, chain.point.digest, manifests, volumes)
