"""The screen the guide draws on: urwid's own terminal driver on Linux; on Windows (WinPE's console) urwid's
Windows console driver with three changes that make it work on any Windows console.

urwid's Windows driver draws with escape sequences (the console's virtual terminal processing, which it
turns on), asks the terminal at start which modes it supports, and reads the console's input records
expecting arrows and the like as escape sequences too (ENABLE_VIRTUAL_TERMINAL_INPUT). Measured under
Wine 8's console, which tests/windows/test_guide_wine.py drives, none of the three holds there:

- Escape sequences are stored as characters and passed on to the terminal: the screen came out broken
  at every 80th byte. `WindowsScreen` draws each frame through the console's classic API instead
  (`core.platform.winconsole`: the characters and the 16 colour attributes of the whole window at
  once), which every Windows console has; no escape sequence is written.
- After the mode queries (DECRQM, ``ESC [ ? 2026 $ p`` ...) the console drew nothing at all. The guide
  uses none of the modes asked about (synchronized output, bracketed paste, focus reports, mouse), and
  a console drawn through the API needs none: they are not sent.
- Up, Down, Page Up ... arrive as key records with a virtual-key code and no character, which urwid's
  reader drops: the arrows did nothing. `KeyReader` passes those keys on as the sequences urwid reads,
  and every record that carries a character as urwid's reader does (so a console that does send
  sequences works the same).
"""

from __future__ import annotations

import sys
from typing import Any

# Virtual-key codes of the keys without a character -> the sequence an xterm sends for them, which
# urwid's input parser reads as 'up', 'page down', ... Other keys without a character (Shift, Alt) are
# modifiers and are left out, as urwid's reader leaves them.
VK_SEQUENCES = {
    0x21: "\x1b[5~", 0x22: "\x1b[6~", 0x23: "\x1b[4~", 0x24: "\x1b[1~",  # Page Up/Down, End, Home
    0x25: "\x1b[D", 0x26: "\x1b[A", 0x27: "\x1b[C", 0x28: "\x1b[B",  # Left, Up, Right, Down
    0x2D: "\x1b[2~", 0x2E: "\x1b[3~",  # Insert, Delete
}


# The colours of urwid's "default" on a console: light grey on black.
DEFAULT_FOREGROUND, DEFAULT_BACKGROUND = 7, 0


def screen() -> Any:
    """The screen for urwid's MainLoop: None (urwid's default) on Linux, `WindowsScreen` on Windows."""
    if sys.platform != "win32":
        return None
    return _windows_screen()


def _windows_screen() -> Any:
    # Imported here: the module exists on every platform, but its classes call kernel32 when used.
    from ctypes import byref
    from ctypes.wintypes import DWORD

    from urwid.display import _win32
    from urwid.display._win32_raw_display import ReadInputThread, Screen

    from core.platform import winconsole

    class KeyReader(ReadInputThread):
        """urwid's console reader, plus the keys that came without a character (see the module's text)."""

        def run(self) -> None:
            handle = _win32.GetStdHandle(_win32.STD_INPUT_HANDLE)
            records = (_win32.INPUT_RECORD * 512)()
            read = DWORD(0)
            window = self._start_window_size or self._window_size()
            pending_high = ""  # a character beyond the BMP comes as two UTF-16 halves, maybe in two reads
            while not self.should_exit:
                resized = False
                text = ""
                if _win32.WaitForSingleObject(handle, 100) != _win32.WAIT_TIMEOUT:
                    if not _win32.ReadConsoleInputW(handle, records, len(records), byref(read)):
                        return  # the console is gone: no more input, as urwid's reader does
                    chars = [pending_high]
                    for rec in records[:read.value]:
                        if rec.EventType == _win32.EventType.KEY_EVENT and rec.Event.KeyEvent.bKeyDown:
                            key = rec.Event.KeyEvent
                            char = key.uChar.UnicodeChar
                            chars.append(char if char != "\x00" else
                                         VK_SEQUENCES.get(key.wVirtualKeyCode, "") * max(key.wRepeatCount, 1))
                        elif rec.EventType == _win32.EventType.WINDOW_BUFFER_SIZE_EVENT:
                            resized = True
                    text = "".join(chars)
                    pending_high = text[-1:] if "\ud800" <= text[-1:] <= "\udbff" else ""
                    if pending_high:
                        text = text[:-1]
                now = self._window_size()
                if now is not None:
                    resized |= window is not None and now != window
                    window = now
                if resized:
                    self._resize()
                if text:
                    data = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
                    self._input.sendall(data.encode("utf-8"))

    class WindowsScreen(Screen):  # type: ignore[misc]
        """urwid's console driver drawing through the console's classic API (`core.platform.winconsole`)."""

        def __init__(self) -> None:
            # the modes the guide does not use, said rather than asked (see the module's text)
            super().__init__(bracketed_paste_mode=False, focus_reporting=False)
            self._attributes: dict[Any, int] = {}

        def write(self, data: str) -> None:
            pass  # no escape sequences reach the console: every frame is drawn by draw_screen

        def flush(self) -> None:
            pass

        def _detect_terminal_modes(self) -> None:
            pass  # no DECRQM queries: see the module's text

        def _attribute(self, attr: Any) -> int:
            found = self._attributes.get(attr)
            if found is None:
                spec = self.resolve_attr(attr, 0)  # the palette's 16-colour entry
                fg = spec.foreground_number if spec.foreground_basic else DEFAULT_FOREGROUND
                bg = spec.background_number if spec.background_basic else DEFAULT_BACKGROUND
                if spec.bold:
                    fg |= 8  # bold is bright on a console, as on Linux's
                if spec.standout:
                    fg, bg = bg, fg
                found = self._attributes[attr] = winconsole.ansi_to_attribute(fg, bg)
            return found

        def draw_screen(self, size: tuple[int, int], canvas: Any) -> None:
            cols, _ = size
            rows = []
            for row in canvas.content():
                cells: list[winconsole.Cell] = []
                for attr, _charset, run in row:
                    a = self._attribute(attr)
                    cells += [(ch, a) for ch in run.decode("utf-8", "replace")]
                rows.append((cells + [(" ", self._attribute(None))] * cols)[:cols])
            winconsole.draw(rows, canvas.cursor)

        def _stop(self) -> None:
            super()._stop()
            winconsole.clear()  # what the console shows next (a prompt) starts on a blank window

        def _start_input_thread(self) -> None:
            if self._input_thread is not None or self._send_input is None:
                return
            window = self._console_window_size()
            self._input_thread = KeyReader(self._send_input, self._sigwinch_handler,
                                           window_size=self._console_window_size, start_window_size=window)
            self._input_thread.start()

    return WindowsScreen()
