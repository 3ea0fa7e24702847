"""How this machine started: UEFI or BIOS (legacy/CSM), and what that means for a Windows put on its disk.

Linux shows /sys/firmware/efi only when the firmware started it through UEFI. An MBR disk's Windows
starts only through BIOS (legacy/CSM) and a GPT disk's only through UEFI (BOOT.md), so a restore that
does not match how the machine boots now needs the firmware's setup changed, which we cannot do.
"""

from __future__ import annotations

import os


def booted_firmware(sysfs: str = "/sys") -> str:
    """"uefi" or "bios": how the running system was started (``sysfs`` names another sysfs root)."""
    return "uefi" if os.path.isdir(os.path.join(sysfs, "firmware", "efi")) else "bios"


def boot_mode_note(scheme: str, sysfs: str = "/sys") -> str | None:
    """A note when Windows on a disk of ``scheme`` ("mbr", "gpt") cannot start the way this machine
    started now; None when it can (or the scheme says nothing about it)."""
    needs = {"mbr": "bios", "gpt": "uefi"}.get(scheme)
    booted = booted_firmware(sysfs)
    if needs is None or needs == booted:
        return None
    if needs == "bios":
        return ("this machine started in UEFI mode, and the restored Windows (MBR disk) starts only in BIOS "
                "mode: enable legacy/CSM boot in the firmware setup to start it here")
    return ("this machine started in BIOS (legacy/CSM) mode, and the restored Windows (GPT disk) starts "
            "only in UEFI mode: switch the firmware setup to UEFI boot to start it here")
