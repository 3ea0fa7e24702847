"""PyInstaller runtime hook: ``ctypes.util.find_library`` looks in the frozen folder first.

pyudev loads libudev through ``find_library("udev")``, which on Linux asks ``ldconfig -p`` or a
compiler; neither exists in the rescue initramfs. The builder bundles libudev.so.1 next to the frozen
interpreter, and this hook (run before any application import) makes find_library return it.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

_original = ctypes.util.find_library


def _find_library(name: str) -> str | None:
    base = getattr(sys, "_MEIPASS", "")
    if base:
        for entry in sorted(os.listdir(base)):
            if entry.startswith(f"lib{name}.so"):
                return os.path.join(base, entry)
    return _original(name)


ctypes.util.find_library = _find_library
