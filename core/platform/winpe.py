"""WinPE's own session controls: whether we run on WinPE, power off, restart, and the keyboard layout,
all through ``wpeutil`` (WinPE's tool for them; a full Windows has none, and is left alone).

On the Linux media the guide's Power off and Restart end it with an exit code for the media's session
to act on; on WinPE the guide asks here (`rescue.guide.main_menu`). ``wpeutil shutdown`` and ``wpeutil
reboot`` flush and close WinPE's volumes as Windows' own shutdown does. ``wpeutil SetKeyboardLayout
LCID:KLID`` loads a layout for the session (``0407:00000407``: German); it is gone at the next start,
as WinPE keeps nothing.
"""

from __future__ import annotations

import re
import sys

from ..errors import UnsupportedError
from .tools import run

# The key that exists only while WinPE runs (the same test as `core.platform.ramfs`).
WINPE_KEY = r"SYSTEM\CurrentControlSet\Control\MiniNT"
# wpeutil returns at once; a minute means it hangs.
WPEUTIL_TIMEOUT = 60.0
# A layout as wpeutil takes it: the language id, then the keyboard layout id (KLID), in hexadecimal.
_LAYOUT_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{8}$")


def is_winpe() -> bool:
    """True while WinPE runs (never on Linux or on a full Windows)."""
    if sys.platform != "win32":
        return False
    import winreg

    try:
        winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, WINPE_KEY).Close()
    except OSError:
        return False
    return True


def _wpeutil(*args: str) -> None:
    if not is_winpe():
        raise UnsupportedError(detail=f"wpeutil {args[0]} is WinPE's: this is not WinPE")
    run(["wpeutil", *args], f"wpeutil {' '.join(args)}", error=lambda d: UnsupportedError(detail=d),
        timeout=WPEUTIL_TIMEOUT)


def power_off() -> None:
    """Power WinPE off (returns only if wpeutil failed to, with UnsupportedError saying why)."""
    _wpeutil("shutdown")


def reboot() -> None:
    """Restart WinPE (as `power_off`)."""
    _wpeutil("reboot")


def set_keyboard_layout(layout_id: str) -> None:
    """Load ``layout_id`` (``LCID:KLID``, as ``0407:00000407``) for this WinPE session."""
    if not _LAYOUT_ID.match(layout_id):
        raise UnsupportedError(detail=f"{layout_id!r} is not a keyboard layout id (LCID:KLID)")
    _wpeutil("SetKeyboardLayout", layout_id)
