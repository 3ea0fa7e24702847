"""Kernel modules for the initramfs: the listed ones plus everything they depend on, then depmod.

The list (linux-live/modules.list) names what the rescue system needs (storage and USB controllers,
filesystems, FUSE, loop, keyboards). Dependencies come from each module's own ``.modinfo`` section
(``depends=`` and ``softdep=``), so no modules.dep of the full tree is needed; ``depmod -b`` then writes
modules.dep/modules.alias for just the copied set, which busybox modprobe reads at boot.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from builder.errors import BuildError
from builder.host import run

# A .ko larger than this is not a storage driver we meant to take (sanity cap on what we read whole).
MAX_MODULE = 64 << 20


def read_list(path: Path) -> list[str]:
    """Names from a list file: one per line, ``#`` starts a comment."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _modinfo(ko: Path) -> dict[str, list[str]]:
    if ko.stat().st_size > MAX_MODULE:
        raise BuildError(detail=f"kernel module {ko} is larger than {MAX_MODULE >> 20} MiB")
    data = ko.read_bytes()
    info: dict[str, list[str]] = {}
    for key in (b"depends", b"softdep"):
        for m in re.finditer(rb"(?<=\x00)" + key + rb"=([^\x00]*)", data):
            info.setdefault(key.decode(), []).append(m.group(1).decode(errors="replace"))
    return info


def _deps(ko: Path) -> set[str]:
    info = _modinfo(ko)
    out: set[str] = set()
    for value in info.get("depends", []):
        out.update(_norm(n) for n in value.split(",") if n)
    for value in info.get("softdep", []):  # "pre: crc32c post: foo"
        out.update(_norm(n) for n in value.split() if not n.endswith(":"))
    return out


def install_modules(kernel_root: Path, version: str, names: list[str], dest_root: Path) -> list[str]:
    """Copy ``names`` and their dependency closure into ``dest_root``/lib/modules/VERSION; run depmod.

    Returns the module names copied. A listed name that is neither a module nor built into the
    kernel is a BuildError (a typo or a kernel config change must not silently drop a driver).
    """
    src = kernel_root / "lib" / "modules" / version
    if not (src / "kernel").is_dir():
        raise BuildError(detail=f"no modules for kernel {version} in {kernel_root}")
    index = {_norm(ko.name.removesuffix(".ko")): ko for ko in (src / "kernel").rglob("*.ko")}
    builtin = {_norm(Path(line).name.removesuffix(".ko"))
               for line in (src / "modules.builtin").read_text().split()}
    todo = [_norm(n) for n in names]
    for n in todo:
        if n not in index and n not in builtin:
            raise BuildError(detail=f"kernel module {n} is neither a module nor built into {version}")
    done: set[str] = set()
    while todo:
        n = todo.pop()
        if n in done or n not in index:  # built-in, or a softdep on a module this kernel lacks
            continue
        done.add(n)
        todo.extend(_deps(index[n]) - done)
    dst = dest_root / "lib" / "modules" / version
    for n in sorted(done):
        rel = index[n].relative_to(src)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(index[n], dst / rel)
    for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (src / f).exists():
            shutil.copy2(src / f, dst / f)
    run(["depmod", "-b", str(dest_root), version])
    return sorted(done)
