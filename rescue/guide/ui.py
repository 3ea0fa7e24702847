"""The widgets every screen of the guide shares: palette, frame, menus, text entries, plain sizes.

Sixteen colours and plain ASCII only: the guide must read the same on the Linux console (TERM=linux),
a serial line, SSH and a Windows console, at 80x25.
"""

from __future__ import annotations

from typing import Callable, Sequence

import urwid

from ..output import human as human  # re-exported for the screens: sizes as the CLI prints them

# Foreground, background: the 16 colours every console has.
PALETTE = [
    ("body", "light gray", "black"),
    ("title", "white,bold", "dark blue"),
    ("keys", "black", "light gray"),
    ("focus", "black", "light cyan"),
    ("error", "light red,bold", "black"),
    ("warn", "yellow,bold", "black"),
    ("good", "light green,bold", "black"),
    ("bar", "black", "light gray"),
    ("bar_done", "white", "dark green"),
    ("edit", "white", "dark gray"),
]


MENU_KEYS = "Up/Down: choose   Enter: select   Esc: back"


def frame(title: str, body: urwid.Widget, keys: str = MENU_KEYS) -> urwid.Frame:
    """A screen: title bar on top, the body, and the keys that work here at the bottom."""
    head = urwid.AttrMap(urwid.Text(f" rescue guide - {title}"), "title")
    foot = urwid.AttrMap(urwid.Text(f" {keys}"), "keys")
    return urwid.Frame(urwid.AttrMap(body, "body"), header=head, footer=foot)


class MenuLine(urwid.WidgetWrap):
    """A line to choose. The chosen one is marked "> " as well as highlighted: a serial line or a
    monochrome console shows no colour, and a screen capture must show it too."""

    def __init__(self, label: str, on_press: Callable[[], None]) -> None:
        self._label = label
        self._on_press = on_press
        super().__init__(urwid.Text("  " + label))

    def selectable(self) -> bool:
        return True

    def render(self, size: tuple[int], focus: bool = False) -> urwid.Canvas:
        shown = urwid.Text(("focus", "> " + self._label)) if focus else self._w
        return shown.render(size, focus)

    def keypress(self, size: tuple[int], key: str) -> str | None:
        if key in ("enter", " "):
            self._on_press()
            return None
        return key


def button(label: str, on_press: Callable[[], None]) -> urwid.Widget:
    return MenuLine(label, on_press)


def menu(intro: list[urwid.Widget], items: Sequence[tuple[str, Callable[..., None]]],
         focus: int = 0) -> urwid.Widget:
    """Text on top, then one line per choice; choice ``focus`` (the first unless said) has the focus."""
    widgets: list[urwid.Widget] = [*intro, urwid.Divider()] if intro else []
    first = len(widgets)
    widgets += [button(label, action) for label, action in items]
    walker = urwid.SimpleFocusListWalker(widgets)
    if items:
        walker.set_focus(first + focus)
    return urwid.Padding(urwid.ListBox(walker), left=1, right=1)


class Entry(urwid.Edit):
    """A one-line text entry that calls ``on_enter(text)`` on Enter (``mask`` hides what is typed)."""

    def __init__(self, caption: str, on_enter: Callable[[str], None], mask: str | None = None,
                 text: str = "") -> None:
        super().__init__(caption, text, mask=mask)
        self._on_enter = on_enter

    def keypress(self, size: tuple[()] | tuple[int] | tuple[int, int], key: str) -> str | None:
        if key == "enter":
            self._on_enter(self.edit_text)
            return None
        result: str | None = super().keypress(size, key)
        return result


def form(lines: list[urwid.Widget], entry: urwid.Widget) -> urwid.Widget:
    """Explanatory text, then the entry with the focus."""
    walker = urwid.SimpleFocusListWalker([*lines, urwid.Divider(), urwid.AttrMap(entry, "edit")])
    walker.set_focus(len(walker) - 1)
    return urwid.Padding(urwid.ListBox(walker), left=1, right=1)


def texts(*lines: str, style: str | None = None) -> list[urwid.Widget]:
    return [urwid.Text((style, line) if style else line) for line in lines]
