"""Issue 15 on WinPE: the guide in a Windows console, driven as a person would, through Wine's console in
an 80x25 tmux pane (tests/guide/terminal.py), on image files.

The Windows CLI runs under Wine from this checkout (the pinned Windows CPython and runtime wheels, as
tests/platform/test_wine.py runs it) and, for the backup and the refusal, as the frozen rescue.exe of
`rescue-build windows` (built once per session: tests/windows/conftest.py). The prefix says it is WinPE
(its ``MiniNT`` key), and WinPE's ``wpeutil`` and ``wpeinit`` are stubs that log their calls
(tests/winpe/stub_tool.c), so Power off and the keyboard layout go the WinPE way; WinPE's start file
(builder/winpe_start.py) runs in Wine's cmd.

Measured under Wine 8 and handled in `rescue.guide.console` (see there): the screen is drawn through the
console's classic API, keys without a character become escape sequences for urwid. Two Wine-only
habits the driver works around: Esc is sent as ESC ESC (`Terminal.escape`), and the first key of a
console program takes about 10 s to arrive (Wine's console starts a desktop for its keyboard tables,
which fails without a display), so each session's first key is an arrow whose effect is waited for.
Every screen waited for is kept (the test's tmp folder and /var/tmp/rescue-guide-captures/).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from builder import wine, winpe_start
from builder.windows import WindowsBuild
from core.engine.repo import Repository
from tests.guide.terminal import Terminal, flat
from tests.images import slow_to_compress, small_disk

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("RESCUE_WINE_CACHE", "/var/tmp/rescue-wine-cache"))
STUB_C = ROOT / "tests" / "winpe" / "stub_tool.c"
MiB = 1 << 20
MAIN = [" rescue guide - main screen", " What do you want to do?", "",
        " No disk is overwritten until you have seen the plan and typed its name.", "",
        " > Back up this PC", "   Restore a backup", "   Copy to a new disk (clone)",
        "   Take files out of a backup", "   Repair Windows startup", "   Keyboard layout: English (US) [us]",
        "   Shell", "   Power off", "   Restart"]
# the main screen's choices, counted from the first
FILES, KEYBOARD, POWER_OFF = 3, 5, 7
# the session's Windows build may be made in this module's setup: as tests/windows/test_rescue_exe.py
pytestmark = pytest.mark.timeout(2400)


class WinePE:
    """The prefix and how to start the guide in it: P: the interpreter, S: its wheels, R: this checkout,
    W: the test's files, B: the stub wpeutil, Z: where the stub logs."""

    def __init__(self, prefix: wine.Prefix, work: Path, calls: Path) -> None:
        self.prefix, self.work, self.calls = prefix, work, calls

    def guide(self, tmp: Path, name: str, disks: list[str], frozen: Path | None = None) -> Terminal:
        """The guide of this checkout, or of the frozen folder ``frozen`` (rescue.exe, as X:)."""
        env = {**self.prefix.env, "WINEPATH": "B:\\"}
        if frozen is None:
            env.update(PYTHONPATH="S:\\;R:\\", PYTHONPYCACHEPREFIX="C:\\pycache")
            program = ["P:\\python.exe", "-m", "rescue"]
        else:
            self.prefix.map_drive("X", frozen)
            program = ["X:\\rescue.exe"]
        command = [self.prefix.wine, *program, "guide", *(a for d in disks for a in ("--disk", d))]
        t = Terminal(tmp, name, [], command=command, env=env, cwd=self.work)
        t.wait("What do you want to do?")
        # the first key: see the module's text
        t.keys("Down")
        t.wait("> Restore a backup")
        t.keys("Up")
        t.wait("> Back up this PC")
        return t

    def wpeutil_calls(self) -> list[str]:
        log = self.calls / "calls.txt"
        return [line.strip() for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


@pytest.fixture(scope="module")
def pe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WinePE]:
    CACHE.mkdir(parents=True, exist_ok=True)
    base = tmp_path_factory.mktemp("wine-guide")
    python = wine.windows_python(CACHE)
    site = base / "site"
    wine.install_wheels(wine.fetch_wheels(wine.RUNTIME_LOCK, CACHE), site)
    prefix = wine.Prefix(base / "prefix", shim=wine.build_prng_shim(CACHE))
    work, calls, stubs = base / "work", base / "calls", base / "stubs"
    for d in (work, calls, stubs):
        d.mkdir()
    for tool in ("wpeutil", "wpeinit"):
        subprocess.run(["x86_64-w64-mingw32-gcc", "-O", "-s", f'-DNAME="{tool}"', "-o",
                        str(stubs / f"{tool}.exe"), str(STUB_C)], check=True, capture_output=True,
                       timeout=120)
    for letter, folder in (("P", python), ("S", site), ("R", ROOT), ("W", work), ("B", stubs), ("Z", calls)):
        prefix.map_drive(letter, folder)
    # What WinPE has and a full Windows has not (core.platform.winpe.is_winpe)
    r = prefix.run(["reg", "add", "HKLM\\SYSTEM\\CurrentControlSet\\Control\\MiniNT", "/f"])
    assert r.returncode == 0, r.stderr
    try:
        yield WinePE(prefix, work, calls)
    finally:
        prefix.close()


@pytest.fixture
def terms() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def choose_line(t: Terminal, screen: str, text: str) -> None:
    """Down to the menu line holding ``text`` (from the first choice), then Enter."""
    lines = screen.splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith(" > "))
    t.keys(*["Down"] * (next(n for n, line in enumerate(lines) if text in line) - first), "Enter")


@pytest.fixture(params=["source", "frozen"])
def build(request: pytest.FixtureRequest) -> Path | None:
    """None: the checkout's CLI; else the frozen folder of `rescue-build windows` (once per session,
    tests/windows/conftest.py)."""
    if request.param == "source":
        return None
    folder: Path = request.getfixturevalue("windows_build").folder
    return folder


def test_main_screen_backup_a_refusal_in_the_engines_words_and_a_stopped_backup(
        pe: WinePE, terms: list[Terminal], tmp_path: Path, build: Path | None) -> None:
    for old in (pe.work / "rescue-backups", pe.work / "pc.img", pe.work / "tiny.img"):
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)  # the other build's run
    src = small_disk(pe.work / "pc.img", seed=15)
    slow_to_compress(src)  # a backup long enough to be cancelled
    tiny = pe.work / "tiny.img"
    with open(tiny, "wb") as f:
        f.truncate(16 * MiB)
    name = "wine-backup-refusal" + ("-frozen" if build else "")
    t = pe.guide(tmp_path, name, ["W:\\pc.img", "W:\\tiny.img"], build)
    terms.append(t)

    # legible at 80x25: every line where it belongs, the chosen one marked and drawn in colour
    screen = t.wait("Up/Down: choose   Enter: select")
    lines = screen.splitlines()
    assert len(lines) == 25 and all(len(line) <= 80 for line in lines)
    assert [line.rstrip() for line in lines[:len(MAIN)]] == MAIN, screen
    assert lines[-1].rstrip() == " Up/Down: choose   Enter: select"
    coloured = t.colours().splitlines()
    assert "44m" in coloured[0]  # the title bar: dark blue, as the palette says (rescue/guide/ui.py)
    assert "106m" in coloured[5] and "> Back up this PC" in coloured[5]  # the choice: on light cyan

    # a backup through the drive Windows mounted (W:), chosen from the list of drives
    t.keys("Enter")
    screen = t.wait("Which disk do you want to back up?")
    assert "W:\\pc.img" in screen and "W:\\tiny.img" in screen
    t.keys("Enter")
    screen = t.wait("The drives Windows mounted")
    assert "W:\\  (disk, " in screen and " free)" in screen
    choose_line(t, screen, "W:\\  (")
    t.wait("Folder: W:\\rescue-backups")
    t.keys("Enter")
    t.wait("Encrypt the backup?")
    t.keys("Down", "Enter")  # No
    t.wait("How much should the backup be compressed?")
    t.keys("Enter")
    screen = t.wait("Start the backup")
    assert "Folder:      W:\\rescue-backups" in screen
    t.keys("Enter")
    screen = t.wait("Log: ")
    assert "Done." in screen and "full backup" in screen and "of W:\\pc.img" in screen
    images = Repository(str(pe.work / "rescue-backups")).list_images()
    assert [(i.kind, i.complete, i.encrypted) for i in images] == [("full", True, False)]
    t.keys("Enter")
    t.wait("What do you want to do?")

    # a restore onto a disk too small: refused with the engine's words, nothing written
    before = digest(tiny)
    t.keys("Down", "Enter")
    t.wait("Where is the backup?")
    t.type("W:\\rescue-backups")
    t.wait("Which restore point?")
    t.keys("Enter")
    screen = t.wait("Which disk should be overwritten")
    choose_line(t, screen, "W:\\tiny.img")
    screen = t.wait("This cannot be done:")
    # core.errors.TargetRefused's words, with the engine's reason
    assert "Refusing target W:\\tiny.img: " in flat(screen) and "(exit code 40)" in screen, screen
    assert "Nothing was written." in screen
    assert digest(tiny) == before
    t.keys("Enter")
    t.wait("What do you want to do?")

    # a full backup again at the smallest setting, stopped with Esc from its progress screen: the
    # earlier image untouched, nothing of the stopped one left
    folder = pe.work / "rescue-backups"
    earlier = {p.name: digest(p) for p in folder.iterdir() if not p.name.endswith(".log")}
    t.keys("Enter")
    t.wait("Which disk do you want to back up?")
    t.keys("Enter")
    screen = t.wait("The drives Windows mounted")
    choose_line(t, screen, "W:\\  (")
    t.wait("Folder: W:\\rescue-backups")
    t.keys("Enter")
    t.wait("Everything again (full backup)")
    t.keys("Down", "Enter")
    t.wait("Encrypt the backup?")
    t.keys("Down", "Enter")
    t.wait("How much should the backup be compressed?")
    t.keys("Down", "Down", "Enter")  # Smallest: much slower
    t.wait("Start the backup")
    t.keys("Enter")
    screen = t.wait("Step: backup")
    assert "Esc: stop" in screen
    t.escape()
    t.wait("Stop now?")
    t.keys("Down", "Enter")
    screen = t.wait("Log: ")
    assert "Stopped." in screen and "(exit code 130)" in screen
    now = {p.name: digest(p) for p in folder.iterdir() if not p.name.endswith(".log")}
    assert now == earlier
    t.keys("Enter")
    t.wait("What do you want to do?")
    t.keys(*["Down"] * 6, "Enter")  # Shell
    assert t.exit_code() == 64


def test_winpe_keyboard_layout_unavailable_jobs_and_power_off_through_wpeutil(
        pe: WinePE, terms: list[Terminal], tmp_path: Path) -> None:
    t = pe.guide(tmp_path, "wine-winpe-controls", [])
    terms.append(t)

    # without --disk the disks are Windows' \\.\PhysicalDriveN (core.platform.windows.discover): Wine's
    # answer no disk query, so none is offered (the Linux discovery would need pyudev, absent here)
    t.keys("Enter")
    t.wait("No disks were found.")
    t.escape()
    t.wait("What do you want to do?")

    # taking files out needs FUSE and ntfs-3g: said, with what to use instead; Esc goes back
    t.keys(*["Down"] * FILES, "Enter")
    screen = t.wait("Not available on Windows:")
    assert "taking files out of an image needs FUSE and ntfs-3g: use the Linux rescue media." in " ".join(
        screen.split())
    t.escape()
    t.wait("What do you want to do?")

    # the keyboard layout: WinPE's German layout through wpeutil, then shown on the main screen
    t.keys(*["Down"] * KEYBOARD, "Enter")
    screen = t.wait("Which keyboard is this?")
    assert "> English (US) [us]" in screen
    t.keys("Down", "Down", "Enter")  # us, uk, de
    t.wait("Keyboard layout: German [de].")
    assert pe.wpeutil_calls() == ["wpeutil SetKeyboardLayout 0407:00000407"]
    t.type("qwertz")
    screen = t.wait("What do you want to do?")
    assert "   Keyboard layout: German [de]" in screen

    # Power off: wpeutil shutdown, and the guide ends with 65
    t.keys(*["Down"] * POWER_OFF, "Enter")
    assert t.exit_code(timeout=60) == 65
    assert pe.wpeutil_calls()[-1] == "wpeutil shutdown"

    # `rescue keymap` on WinPE: the same short names, Windows' layouts; the one loaded is shown in use
    env = {"PYTHONPATH": "S:\\;R:\\", "PYTHONPYCACHEPREFIX": "C:\\pycache", "WINEPATH": "B:\\"}
    r = pe.prefix.run(["P:\\python.exe", "-m", "rescue", "keymap", "fr"], env=env, cwd=pe.work)
    assert r.returncode == 0 and r.stdout.decode().strip() == "Keyboard layout: French [fr]", r
    assert pe.wpeutil_calls()[-1] == "wpeutil SetKeyboardLayout 040c:0000040c"
    r = pe.prefix.run(["P:\\python.exe", "-m", "rescue", "keymap"], env=env, cwd=pe.work)
    assert r.returncode == 0 and "In use: French [fr]." in r.stdout.decode(), r
    assert "Not possible here" not in r.stdout.decode()


@pytest.mark.parametrize("shell_only", [False, True])
def test_winpe_start_lands_in_the_guide_with_the_shell_one_choice_away(
        pe: WinePE, terms: list[Terminal], tmp_path: Path, shell_only: bool,
        windows_build: WindowsBuild) -> None:
    """startnet.cmd as WinPE runs it, in Wine's cmd in the console, with X:\\rescue the frozen folder as
    on the media: without a script on the medium the guide starts, its Shell gives the prompt with how
    to come back; "shell only" gives the prompt and the disks instead. WinPE's tools are stubs."""
    x = tmp_path / "x"
    (x / "rescue-pe").mkdir(parents=True)
    (x / "rescue").symlink_to(windows_build.folder.resolve())
    (x / "rescue-pe" / "medium.id").write_bytes(winpe_start.crlf("0123456789abcdef\n"))
    if shell_only:
        (x / "rescue-pe" / "rescue-shell-only").write_bytes(b"")
    (x / "startnet.cmd").write_bytes(winpe_start.startnet("9.9.9", "test"))
    pe.prefix.map_drive("X", x)
    (pe.calls / "calls.txt").unlink(missing_ok=True)
    env = {**pe.prefix.env, "WINEPATH": "B:\\"}
    t = Terminal(tmp_path, f"wine-startnet{'-shell-only' if shell_only else ''}", [],
                 command=[pe.prefix.wine, "cmd", "/c", "X:\\startnet.cmd"], env=env, cwd=pe.work)
    terms.append(t)
    if shell_only:
        screen = t.wait('"rescue guide" starts the guide, "rescue --help" lists the commands')
        assert "What do you want to do?" not in screen
    else:
        t.wait("What do you want to do?")
        t.keys("Down")  # the first key: see the module's text
        t.wait("> Restore a backup")
        t.keys(*["Down"] * 5, "Enter")  # Shell
        screen = t.wait('"rescue guide" starts the guide again')
        assert "Rescue 9.9.9 on WinPE:" in screen and "What do you want to do?" not in screen
    # cmd /c ends with the last errorlevel (WinPE's cmd /k stays at the prompt): the guide's Shell, 64
    assert t.exit_code(timeout=120) == (0 if shell_only else 64)
    assert pe.wpeutil_calls() == ["wpeinit"]


def test_clone_onto_a_blank_disk_with_its_name_typed(pe: WinePE, terms: list[Terminal],
                                                     tmp_path: Path) -> None:
    """Copy to a new disk in the Windows console: the plan, a wrong name refused with nothing written,
    then the target's name typed (backslashes and all), and the copy bit for bit."""
    src = small_disk(pe.work / "clone-src.img", seed=16)
    new = pe.work / "clone-new.img"
    with open(new, "wb") as f:
        f.truncate(src.stat().st_size)
    t = pe.guide(tmp_path, "wine-clone", ["W:\\clone-src.img", "W:\\clone-new.img"])
    terms.append(t)
    t.keys("Down", "Down", "Enter")
    t.wait("Which disk should be copied?")
    t.keys("Enter")
    t.wait("onto which disk?")
    t.keys("Down", "Enter")
    screen = t.wait("Type the target's name")
    assert "ALL DATA ON W:\\clone-new.img" in screen and " -> " in screen and "copy" in screen
    before = digest(new)
    t.type("clone-new.img")
    t.wait("nothing was written. Type it again")
    assert digest(new) == before
    t.type("W:\\clone-new.img")
    screen = t.wait("Log: ")
    assert "Done." in screen and "read back and checked" in flat(screen), screen
    assert digest(new) == digest(src)
