"""Declarative little-endian struct tables (the dissect/cstruct idea, in a few lines).

A `Struct` is declared as a list of ``(name, format)`` fields; offsets are computed, never typed by
hand, so a table in FORMAT.md and the code cannot drift (tests compare them). Parsing validates the
buffer length first and raises only `core.errors.FormatError`, never `struct.error`.

Formats are `struct` codes without byte-order prefix (always little-endian): ``B H I Q``, ``Ns`` for
N raw bytes.
"""

from __future__ import annotations

import struct
from typing import Any, Iterator

from .errors import FormatError


class Struct:
    """A fixed-size little-endian record with named fields."""

    def __init__(self, name: str, fields: list[tuple[str, str]]) -> None:
        self.name = name
        self.fields = fields
        # The compiled codec of the declared layout, public for hot loops over packed tables
        # (``codec.unpack_from`` / ``codec.iter_unpack``), so no caller declares the layout again.
        self.codec = struct.Struct("<" + "".join(fmt for _, fmt in fields))
        self.size = self.codec.size
        self.offsets: dict[str, tuple[int, int]] = {}
        off = 0
        for fname, fmt in fields:
            size = struct.calcsize("<" + fmt)
            self.offsets[fname] = (off, size)
            off += size

    def parse(self, data: bytes | bytearray | memoryview, offset: int = 0,
              what: str | None = None) -> dict[str, Any]:
        """Decode the record at ``offset``; a short buffer is a `FormatError`."""
        if offset < 0 or len(data) - offset < self.size:
            raise FormatError(what=what or self.name,
                              detail=f"need {self.size} bytes at offset {offset}, have {max(0, len(data) - offset)}")
        values = self.codec.unpack_from(data, offset)
        return dict(zip((n for n, _ in self.fields), values))

    def unpack_from(self, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, ...]:
        """The field values at ``offset`` as a tuple, in declaration order: for hot loops over packed
        tables whose length the caller has checked (a short buffer is still a `FormatError`)."""
        if offset < 0 or len(data) - offset < self.size:
            raise FormatError(what=self.name, detail=f"need {self.size} bytes at offset {offset}")
        return self.codec.unpack_from(data, offset)

    def iter_unpack(self, data: bytes | bytearray | memoryview) -> Iterator[tuple[Any, ...]]:
        """Every record of a packed table, as tuples; the table must be whole records."""
        if len(data) % self.size:
            raise FormatError(what=self.name, detail=f"table of {len(data)} bytes is not whole records")
        return self.codec.iter_unpack(data)

    def field(self, name: str) -> tuple[int, struct.Struct]:
        """Where field ``name`` starts and its codec: to read or patch one field in place."""
        return self.offsets[name][0], struct.Struct("<" + dict(self.fields)[name])

    def pack(self, *values: Any) -> bytes:
        """Encode from positional values in declaration order (hot loops; `build` names them)."""
        return self.codec.pack(*values)

    def build(self, **values: Any) -> bytes:
        """Encode; missing fields are zero (or empty bytes)."""
        args = []
        for fname, fmt in self.fields:
            default: Any = b"" if fmt.endswith("s") else 0
            args.append(values.pop(fname, default))
        if values:
            raise TypeError(f"{self.name}: unknown fields {sorted(values)}")
        return self.codec.pack(*args)
