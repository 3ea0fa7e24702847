"""Whether a standard stream is a person's terminal, and text that survives a redirected stream, on
Linux and Windows.

Windows' ``NUL`` is a character device, so ``isatty`` says yes for ``rescue.exe < NUL``: a prompt would
then wait on a console nobody looks at (a script hangs instead of failing). Only a real console has a
console mode there. And Windows writes a pipe or file in the ANSI code page (cp1252), which has no box
drawing characters: `rescue list` would fail on its tree lines; such a stream gets UTF-8.
"""

from __future__ import annotations

import sys
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    """A person's terminal: ``isatty``, and on Windows a console (not ``NUL``)."""
    try:
        if not stream.isatty():
            return False
    except ValueError:  # closed
        return False
    if sys.platform != "win32":
        return True
    import ctypes
    import msvcrt

    try:
        handle = msvcrt.get_osfhandle(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    mode = ctypes.c_ulong(0)
    return bool(ctypes.windll.kernel32.GetConsoleMode(handle, ctypes.byref(mode)))


def utf8_when_redirected(stream: TextIO) -> None:
    """On Windows, a stream that is not a console writes UTF-8 (replacing what cannot be encoded)."""
    if sys.platform == "win32" and not is_terminal(stream):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")
