"""A real terminal for the guide's tests: tmux at 80x25 running `python -m rescue guide`, driven with
send-keys and read with capture-pane. Every screen a test waited for is kept as an artefact, in the
test's tmp folder and in /var/tmp/rescue-guide-captures/ for people to look at."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CAPTURES = Path("/var/tmp/rescue-guide-captures")
# Long enough for a small backup or restore on two busy cores; a screen that never comes fails the test.
WAIT_SECONDS = 60


def flat(screen: str) -> str:
    """The screen's words joined by single spaces: text the guide wrapped at 80 columns reads whole."""
    return " ".join(screen.split())


class Terminal:
    """``command`` (with ``env`` and ``cwd``): what runs instead of this checkout's `rescue guide` (the
    Windows CLI under Wine: tests/windows/test_guide_wine.py); its standard error then goes through a
    pipe, as a Windows program under Wine cannot write a host file as a standard stream."""

    def __init__(self, tmp: Path, name: str, disks: list[Path], args: tuple[str, ...] = (), *,
                 command: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is missing: scripts/setup.sh installs it")
        self.tmp, self.name = tmp, name
        # the server's socket in the test's folder: nothing is left in /tmp/tmux-UID, and no other tmux is met
        self.socket = str(tmp / "tmux.sock")
        self.exit_file = tmp / "guide.exit"
        self.screens: list[str] = []
        self.wine = command is not None
        # RESCUE_EXE: the same tests against another build (the frozen binary), as tests/images.run_rescue
        exe = os.environ.get("RESCUE_EXE")
        args = command or [*([exe] if exe else [sys.executable, "-m", "rescue"]), "guide",
                           *(a for d in disks for a in ("--disk", str(d))), *args]
        stderr = shlex.quote(str(tmp / "guide.stderr"))
        settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # TERM=linux: what the guide meets on the rescue media's console (16 colours)
        script = (f"cd {shlex.quote(str(cwd))} && env -u RESCUE_PASSWORD TERM=linux {settings} "
                  f"{shlex.join(args)}"
                  + (f" 2> >(cat > {stderr})" if self.wine else f" 2>{stderr}") + ";"
                  f" echo $? > {shlex.quote(str(self.exit_file))};"
                  " sleep 300")
        if self.wine:
            script = f"bash -c {shlex.quote(script)}"
        self._tmux("new-session", "-d", "-x", "80", "-y", "25", script)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True,
                              text=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def colours(self) -> str:
        """The screen with its colours, as escape sequences (capture-pane -e)."""
        return self._tmux("capture-pane", "-p", "-e")

    def wait(self, text: str, timeout: float = WAIT_SECONDS) -> str:
        """Wait until ``text`` is on the screen (line breaks count as spaces, or as nothing: a long path
        is cut anywhere); keep that screen."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if flat(text) in flat(shown) or "".join(text.split()) in "".join(shown.split()):  # a path cut
                self.screens.append(shown)
                return shown
            if time.monotonic() > deadline:
                self.screens.append(shown)
                self.save()
                pytest.fail(f"{text!r} never appeared; the screen:\n{shown}\nstderr: {self.stderr()}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        for k in keys:
            self._tmux("send-keys", k)
            time.sleep(0.05)  # one key at a time, as a person types: each reaches its own screen

    def escape(self) -> None:
        """The Esc key. Wine's console reads a lone ESC from its terminal as the start of a sequence and
        waits for the rest; ESC ESC is its Alt+Esc, a key record with the character ESC: urwid's Esc."""
        if self.wine:
            self._tmux("send-keys", "-H", "1b", "1b")
            time.sleep(0.05)
        else:
            self.keys("Escape")

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)
        time.sleep(0.05)
        self.keys("Enter")

    def stderr(self) -> str:
        p = self.tmp / "guide.stderr"
        return p.read_text(errors="replace") if p.exists() else ""

    def exit_code(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while not self.exit_file.exists() or not self.exit_file.read_text().strip():
            if time.monotonic() > deadline:
                pytest.fail(f"the guide did not end; the screen:\n{self.screen()}")
            time.sleep(0.1)
        return int(self.exit_file.read_text())

    def save(self) -> None:
        text = "\n".join(f"--- screen {n + 1} ---\n{s}" for n, s in enumerate(self.screens))
        (self.tmp / "screens.txt").write_text(text)
        try:
            CAPTURES.mkdir(parents=True, exist_ok=True)
            (CAPTURES / f"{self.name}.txt").write_text(text)
        except OSError:
            pass  # the copy for people is a convenience; the tmp folder keeps the artefact

    def close(self) -> None:
        self.save()
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, check=False)
