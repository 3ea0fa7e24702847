"""Drawing on a Windows console through its classic API: a whole screen of characters with their colour
attributes at once, the cursor, and clearing (for the guide's screen on WinPE; `rescue.guide.console`).

The classic calls (WriteConsoleOutputW, SetConsoleCursorPosition) work on every Windows console,
whatever it makes of escape sequences. Escape sequences need the console's virtual terminal processing,
and Wine's console (where the tests run the guide) stores them as characters instead: a screen drawn
with them comes out broken at every 80th byte. Attributes are the console's 16 colours: bits 0-3 the
foreground (1 blue, 2 green, 4 red, 8 intensity), bits 4-7 the background.
"""

from __future__ import annotations

import sys

# A cell: the character and its attribute.
Cell = tuple[str, int]

STD_OUTPUT_HANDLE = -11


def ansi_to_attribute(foreground: int, background: int) -> int:
    """The console attribute of two ANSI colour numbers (0-15: bit 0 red, bit 1 green, bit 2 blue, bit 3
    bright; Windows orders the colour bits the other way round)."""
    def bits(n: int) -> int:
        return ((n & 1) << 2) | (n & 2) | ((n & 4) >> 2) | (n & 8)
    return bits(foreground) | bits(background) << 4


if sys.platform == "win32":  # (sys.platform itself, so that mypy checks this for the platform it checks)
    import ctypes
    from ctypes import wintypes

    class _CharInfo(ctypes.Structure):
        _fields_ = [("char", ctypes.c_wchar), ("attributes", wintypes.WORD)]

    class _BufferInfo(ctypes.Structure):
        _fields_ = [("size", wintypes._COORD), ("cursor", wintypes._COORD), ("attributes", wintypes.WORD),
                    ("window", wintypes.SMALL_RECT), ("maximum", wintypes._COORD)]

    class _CursorInfo(ctypes.Structure):
        _fields_ = [("size", wintypes.DWORD), ("visible", wintypes.BOOL)]

    _k32 = ctypes.WinDLL("kernel32", use_last_error=True)

    def _out() -> int:
        return int(_k32.GetStdHandle(STD_OUTPUT_HANDLE))

    def _window(handle: int) -> tuple[int, int, int, int] | None:
        """(left, top, columns, rows) of the visible window, in buffer coordinates."""
        info = _BufferInfo()
        if not _k32.GetConsoleScreenBufferInfo(handle, ctypes.byref(info)):
            return None
        w = info.window
        return w.Left, w.Top, w.Right - w.Left + 1, w.Bottom - w.Top + 1

    def draw(rows: list[list[Cell]], cursor: tuple[int, int] | None) -> bool:
        """Put ``rows`` (each as wide as the window) on the visible window at once, then the cursor
        there (None: hidden). False when standard output is no console."""
        handle = _out()
        window = _window(handle)
        if window is None or not rows:
            return False
        left, top, _, _ = window
        width, height = len(rows[0]), len(rows)
        cells = (_CharInfo * (width * height))()
        for y, row in enumerate(rows):
            for x, (char, attribute) in enumerate(row[:width]):
                cells[y * width + x] = _CharInfo(char, attribute)
        region = wintypes.SMALL_RECT(left, top, left + width - 1, top + height - 1)
        ok = _k32.WriteConsoleOutputW(handle, cells, wintypes._COORD(width, height), wintypes._COORD(0, 0),
                                      ctypes.byref(region))
        _k32.SetConsoleCursorInfo(handle, ctypes.byref(_CursorInfo(25, cursor is not None)))
        if cursor is not None:
            _k32.SetConsoleCursorPosition(handle, wintypes._COORD(left + cursor[0], top + cursor[1]))
        return bool(ok)

    def clear(attribute: int = 0x07) -> None:
        """The visible window blank (light grey on black), the cursor at its top left and shown."""
        handle = _out()
        window = _window(handle)
        if window is None:
            return
        left, top, width, height = window
        written = wintypes.DWORD(0)
        for y in range(top, top + height):
            _k32.FillConsoleOutputCharacterW(handle, ctypes.c_wchar(" "), width, wintypes._COORD(left, y),
                                             ctypes.byref(written))
            _k32.FillConsoleOutputAttribute(handle, attribute, width, wintypes._COORD(left, y),
                                            ctypes.byref(written))
        _k32.SetConsoleCursorInfo(handle, ctypes.byref(_CursorInfo(25, True)))
        _k32.SetConsoleCursorPosition(handle, wintypes._COORD(left, top))
