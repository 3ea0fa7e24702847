"""Keyboard layouts of the console: the ones offered by name, the one in use, and loading one.

A layout is loaded with ``loadkeys`` (Debian's kbd); the rescue media carry it and the PC keymaps of
console-data under /usr/share/keymaps, so this works offline. The console has one keymap for all its
virtual terminals; a serial line or an SSH session is not affected (their keyboard is the far end's).
`rescue keymap`, the guide's "Keyboard layout" screen and the media's ``rescue.keymap=`` boot option
all come through here, so the same short names mean the same keymap everywhere.

On WinPE the same short names load Windows' layouts (`WINDOWS_LAYOUTS`, ``wpeutil SetKeyboardLayout``
through `core.platform.winpe`), for the whole session; a full Windows keeps its own language settings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.errors import UnsupportedError, UsageError
from core.platform import winpe

# Short name (as people and X11 call the layout) -> (console-data keymap, what it is). The Latin
# layouts without dead keys where console-data has them: a password is typed as it reads.
LAYOUTS: dict[str, tuple[str, str]] = {
    "us": ("us", "English (US)"),
    "uk": ("uk", "English (UK)"),
    "de": ("de-latin1-nodeadkeys", "German"),
    "ch": ("sg-latin1", "German (Switzerland)"),
    "ch-fr": ("fr_CH-latin1", "French (Switzerland)"),
    "fr": ("fr-latin9", "French"),
    "be": ("be-latin1", "Belgian"),
    "ca": ("cf", "French (Canada)"),
    "es": ("es", "Spanish"),
    "latam": ("la-latin1", "Spanish (Latin America)"),
    "it": ("it", "Italian"),
    "pt": ("pt-latin1", "Portuguese"),
    "br": ("br-abnt2", "Portuguese (Brazil)"),
    "nl": ("nl", "Dutch"),
    "dk": ("dk-latin1", "Danish"),
    "no": ("no-latin1", "Norwegian"),
    "se": ("se-latin1", "Swedish"),
    "fi": ("fi-latin1", "Finnish"),
    "pl": ("pl", "Polish"),
    "cz": ("cz-lat2", "Czech"),
    "hu": ("hu", "Hungarian"),
    "tr": ("trq", "Turkish"),
    "gr": ("gr", "Greek"),
    "ru": ("ru", "Russian"),
    "jp": ("jp106", "Japanese"),
}
# The same layouts on Windows: language id and keyboard layout id (KLID) as wpeutil takes them. Where
# Windows has several for a language, the one Windows installs by default for it (Polish: Programmers,
# Brazil: ABNT2, Finnish: the Swedish/Finnish layout, French Canada: Canadian French).
WINDOWS_LAYOUTS: dict[str, str] = {
    "us": "0409:00000409", "uk": "0809:00000809", "de": "0407:00000407", "ch": "0807:00000807",
    "ch-fr": "100c:0000100c", "fr": "040c:0000040c", "be": "080c:0000080c", "ca": "0c0c:00001009",
    "es": "0c0a:0000040a", "latam": "080a:0000080a", "it": "0410:00000410", "pt": "0816:00000816",
    "br": "0416:00010416", "nl": "0413:00000413", "dk": "0406:00000406", "no": "0414:00000414",
    "se": "041d:0000041d", "fi": "040b:0000041d", "pl": "0415:00010415", "cz": "0405:00000405",
    "hu": "040e:0000040e", "tr": "041f:0000041f", "gr": "0408:00000408", "ru": "0419:00000419",
    "jp": "0411:00000411",
}
DEFAULT = "us"  # the kernel's built-in keymap, and WinPE's default
# The layout loaded last (short name or keymap name), for the guide and `rescue keymap` to show:
# a file in RAM (/run; on WinPE its temporary folder on X:), forgotten at reboot as the layout is.
STATE = Path(tempfile.gettempdir() if sys.platform == "win32" else "/run") / "rescue-keymap"


def describe(name: str) -> str:
    """'German [de]' for a short name; a keymap name as it is."""
    return f"{LAYOUTS[name][1]} [{name}]" if name in LAYOUTS else name


def current() -> str:
    """The layout in use as far as we know: the last one loaded through here, else the default."""
    try:
        return STATE.read_text().strip() or DEFAULT
    except OSError:
        return DEFAULT


def supported() -> str | None:
    """None when layouts can be loaded here, else why not (in words for the user)."""
    if sys.platform == "win32":
        return None if winpe.is_winpe() else "the keyboard layout is set by Windows' language settings here"
    if not sys.platform.startswith("linux"):
        return "the keyboard layout is set by the system here"
    if shutil.which("loadkeys") is None:
        return "loadkeys is missing (Debian packages kbd and console-data)"
    return None


def load(name: str) -> str:
    """Load layout ``name`` (a short name of LAYOUTS, or any keymap name loadkeys knows) on the
    console; returns the name as `describe` shows it."""
    if not name or name.startswith("-") or "/" in name:  # a name, never a path or an option of loadkeys
        raise UsageError(detail=f"no keyboard layout {name!r} (`rescue keymap` lists them)")
    why = supported()
    if why is not None:
        raise UnsupportedError(detail=why)
    if sys.platform == "win32":
        return _load_windows(name)
    keymap = LAYOUTS[name][0] if name in LAYOUTS else name
    try:
        proc = subprocess.run(["loadkeys", "-q", keymap], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise UnsupportedError(detail=f"loadkeys {keymap} did not finish within 60 s") from None
    if proc.returncode != 0:
        said = " ".join((proc.stderr or proc.stdout).split())
        if "unable to open file" in said.lower():  # kbd's words for a name it finds no keymap for
            raise UsageError(detail=f"no keyboard layout {name!r} (`rescue keymap` lists them)")
        raise UnsupportedError(detail=f"loadkeys {keymap} failed: {said or f'exit code {proc.returncode}'}")
    _remember(name)
    return describe(name)


def _load_windows(name: str) -> str:
    """WinPE: a short name of LAYOUTS, or a layout id as wpeutil takes it (LCID:KLID, e.g. 0407:00010407)."""
    layout = WINDOWS_LAYOUTS.get(name, name)
    if ":" not in layout:
        raise UsageError(detail=f"no keyboard layout {name!r} (`rescue keymap` lists them; on WinPE an "
                                f"LCID:KLID such as 0407:00000407 works too)")
    winpe.set_keyboard_layout(layout)
    _remember(name)
    return describe(name)


def _remember(name: str) -> None:
    try:
        STATE.write_text(name + "\n")
    except OSError:
        pass  # not root on a normal machine: the layout is loaded, only not remembered for display
