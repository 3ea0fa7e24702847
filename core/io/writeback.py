"""Start the kernel's write-back early instead of paying for all of it in the final fsync.

A backup writes gigabytes into the page cache; with the default dirty limits (a share of RAM) the
kernel writes nothing until the end, and the closing fsync then waits for the whole volume while the
CPUs idle. `Writeback.wrote` asks for asynchronous write-back (sync_file_range with WRITE, which does
not wait; nothing on Windows, whose lazy writer does this itself) of every 32 MiB as it is written, so disk and CPUs work at the same time and memory holds
little dirty data. Durability still comes from the fsync at the commit points, unchanged.
"""

from __future__ import annotations

from ..platform.files import start_writeback

# 32 MiB: large enough that the calls cost nothing, small enough to keep the disk busy all along.
KICK_EVERY = 32 << 20


class Writeback:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.start = 0  # first byte not yet handed to write-back
        self.end = 0

    def wrote(self, offset: int, length: int) -> None:
        """Note a write; kick write-back once KICK_EVERY bytes of sequential writing piled up."""
        if offset != self.end:  # not sequential: kick what we have and start a new range
            self.kick()
            self.start = offset
        self.end = offset + length
        if self.end - self.start >= KICK_EVERY:
            self.kick()

    def kick(self) -> None:
        if self.end > self.start:
            start_writeback(self.fd, self.start, self.end - self.start)  # errors: fsync reports
        self.start = self.end
