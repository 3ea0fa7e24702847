"""Keyboard layout: chosen from a list before anything important is typed (a password on the wrong
layout is not the one meant), loaded through `rescue.keymap` as `rescue keymap` does, then tried out."""

from __future__ import annotations

import urwid

from core.errors import Error
from rescue import keymap

from .app import Guide
from .ui import Entry, form, frame, menu, texts

TITLE = "keyboard layout"


def label() -> str:
    """The main screen's line: the layout in use is part of it."""
    return f"Keyboard layout: {keymap.describe(keymap.current())}"


def start(guide: Guide) -> None:
    from .main_menu import main_menu

    why = keymap.supported()
    if why is not None:
        lines = texts("The keyboard layout cannot be changed here:", style="error")
        lines += texts(why)
        guide.show(frame(TITLE, menu(lines, [("Back to the main screen", lambda: main_menu(guide))]),
                         "Enter: main screen"), lambda: main_menu(guide))
        return
    names = list(keymap.LAYOUTS)
    items = [(keymap.describe(n), lambda n=n: choose(guide, n)) for n in names]
    intro = texts("Which keyboard is this?",
                  "It applies to this computer's own keyboard (not to a serial line or SSH).",
                  "Other layouts: in the shell, rescue keymap NAME.")
    now = keymap.current()
    # the list is longer than a 24-line terminal: the question stays on top while the list scrolls
    choices = menu([], items, focus=names.index(now) if now in names else 0)  # the layout in use
    question = urwid.Padding(urwid.Pile([*intro, urwid.Divider()]), left=1, right=1)
    body: urwid.Widget = urwid.Frame(choices, header=question)
    guide.show(frame(TITLE, body), lambda: main_menu(guide))


def choose(guide: Guide, name: str) -> None:
    from .main_menu import main_menu

    try:
        shown = keymap.load(name)
    except (Error, OSError) as e:  # the refusal's words (unknown name, loadkeys failed) as they are
        lines = texts("The layout was not loaded:", style="error")
        lines += texts(e.message if isinstance(e, Error) else str(e))
        guide.show(frame(TITLE, menu(lines, [("Back", lambda: start(guide))])), lambda: start(guide))
        return
    lines = texts(f"Keyboard layout: {shown}.", "",
                  "Try it: type letters, digits and signs you will need (a password, say) and check "
                  "they appear as printed on the keys. Nothing typed here is kept.")
    entry = Entry("Try here: ", lambda _text: main_menu(guide))
    guide.show(frame(TITLE, form(lines, entry), "Enter: main screen   Esc: choose another layout"),
               lambda: start(guide))
