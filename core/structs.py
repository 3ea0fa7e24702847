"""Declarative little-endian struct tables (the dissect/cstruct idea, in a few lines).

A `Struct` is declared as a list of ``(name, format)`` fields; offsets are computed, never typed by
hand, so a table in FORMAT.md and the code cannot drift (tests compare them). Parsing validates the
buffer length first and raises only `core.errors.FormatError`, never `struct.error`.

Formats are `struct` codes without byte-order prefix (always little-endian): ``B H I Q``, ``Ns`` for
N raw bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import FormatError


class Struct:
    """A fixed-size little-endian record with named fields."""

    def __init__(self, name: str, fields: list[tuple[str, str]]) -> None:
        self.name = name
        self.fields = fields
        self._st = struct.Struct("<" + "".join(fmt for _, fmt in fields))
        self.size = self._st.size
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
        values = self._st.unpack_from(data, offset)
        return dict(zip((n for n, _ in self.fields), values))

    def build(self, **values: Any) -> bytes:
        """Encode; missing fields are zero (or empty bytes)."""
        args = []
        for fname, fmt in self.fields:
            default: Any = b"" if fmt.endswith("s") else 0
            args.append(values.pop(fname, default))
        if values:
            raise TypeError(f"{self.name}: unknown fields {sorted(values)}")
        return self._st.pack(*args)
