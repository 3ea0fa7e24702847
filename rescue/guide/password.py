"""Passwords: typed twice for a new backup (one typo would make it unrestorable), once to open one.
What is typed is never shown (each character is a '*')."""

from __future__ import annotations

from typing import Callable

from .app import Guide
from .job import Log
from .ui import Entry, form, frame, menu, texts

KEYS = "Enter: next   Esc: back"


def ask_new(guide: Guide, title: str, on_ok: Callable[[bytes], None], back: Callable[[], None],
            problem: str = "") -> None:
    """Ask for a new password twice; a mismatch or an empty password asks again."""
    def first(pw: str) -> None:
        if not pw:
            ask_new(guide, title, on_ok, back, "The password cannot be empty.")
            return

        def second(again: str) -> None:
            if again != pw:
                ask_new(guide, title, on_ok, back, "The two passwords differ: type it again.")
                return
            on_ok(pw.encode())
        guide.show(frame(title, form(texts("Type the same password again:"), Entry("Again: ", second, "*")),
                         KEYS), lambda: ask_new(guide, title, on_ok, back))

    lines = texts(problem, style="error") if problem else []
    lines += texts("Choose the password of this backup. Without it the backup cannot be restored:",
                   "write it down and keep it apart from the backup disk.")
    guide.show(frame(title, form(lines, Entry("Password: ", first, "*")), KEYS), back)


def ask(guide: Guide, title: str, why: str, on_ok: Callable[[bytes], None], back: Callable[[], None],
        problem: str = "") -> None:
    """Ask once for the password of an existing backup; ``problem`` says why it is asked again."""
    lines = texts(problem, style="error") if problem else []
    lines += texts(why, "Esc gives up.")
    guide.show(frame(title, form(lines, Entry("Password: ", lambda pw: on_ok(pw.encode()), "*")),
                     "Enter: next   Esc: give up"), back)


def ask_or_give_up(guide: Guide, title: str, log: Log, given: Callable[[bytes], None],
                   problem: str = "") -> None:
    """`ask` for the password of an encrypted backup; Esc gives up, saying (and logging) that nothing
    was written."""
    def give_up() -> None:
        from .main_menu import main_menu

        log.line("gave up at the password: nothing was written")
        body = menu(texts("No password given: nothing was written."),
                    [("Back to the main screen", lambda: main_menu(guide))])
        guide.show(frame(title, body, "Enter: main screen"), lambda: main_menu(guide))

    ask(guide, title, "This backup is encrypted: type its password.", given, give_up, problem)
