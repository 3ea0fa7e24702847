"""Boot real WinPE media in QEMU, when a real base is supplied (outside CI: no Microsoft base may be stored
on these machines): ``RESCUE_WINPE_BASE`` names a ``copype amd64`` folder or a Windows 10/11 install ISO.

The medium carries an autotest ``rescue-run.cmd``: it finds the result disk (a FAT32 partition holding
``RESULT.TXT``), writes ``rescue --version`` and ``rescue disks`` there, and WinPE powers off
(``wpeutil shutdown``), which ends QEMU. BIOS boot (SeaBIOS): WinPE's ``etfsboot.com`` boots without the
"press any key" prompt that ``efisys.bin`` shows under UEFI. The result disk is SATA (AHCI), which WinPE
drives without added drivers. TCG is slow: the timeout is generous, and no time is asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.winpe.conftest import rescue_cli

BASE = os.environ.get("RESCUE_WINPE_BASE", "")
pytestmark = pytest.mark.skipif(not BASE, reason="RESCUE_WINPE_BASE is not set (a copype folder or a Windows "
                                                 "ISO): no WinPE base may be stored here")
MiB = 1 << 20
AUTOTEST = r"""@echo off
set R=
for %%d in (C D E F G H I J K L M N O P Q R S T U V W Y Z) do if exist %%d:\RESULT.TXT set R=%%d:
if not defined R exit /b 1
rescue --version > %R%\RESULT.TXT 2>&1
rescue disks >> %R%\RESULT.TXT 2>&1
echo autotest: done >> %R%\RESULT.TXT
"""


def _result_disk(path: Path) -> str:
    """A 64 MiB disk with an MBR and one FAT32 partition holding RESULT.TXT; its mtools address."""
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["sfdisk", "-q", str(path)], input=b"2048,,c\n", check=True, capture_output=True)
    subprocess.run(["mkfs.vfat", "-F", "32", "--offset", "2048", str(path), str(63 * 1024)], check=True,
                   capture_output=True)
    image = f"{path}@@{MiB}"
    marker = path.with_name("RESULT.TXT")
    marker.write_text("pending\r\n")
    subprocess.run(["mcopy", "-i", image, str(marker), "::/RESULT.TXT"], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return image


def test_real_winpe_boots_and_runs_the_medium_script(rescue_folder: Path, tmp_path: Path) -> None:
    base = Path(BASE)
    script = tmp_path / "autotest.cmd"
    script.write_bytes(AUTOTEST.replace("\n", "\r\n").encode())
    kind = "--adk-media" if base.is_dir() else "--windows-iso"
    proc = rescue_cli("winpe", kind, str(base), "--rescue-dir", str(rescue_folder), "--out",
                      str(tmp_path / "pe.iso"), "--run-script", str(script), "--work", str(tmp_path / "w"),
                      timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    image = _result_disk(tmp_path / "result.img")
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu, "qemu-system-x86_64: scripts/setup.sh installs it"
    run = subprocess.run([qemu, "-machine", "q35", "-m", "2048", "-smp", "2", "-display", "none",
                          "-no-reboot", "-cdrom", str(tmp_path / "pe.iso"),
                          "-drive", f"file={tmp_path / 'result.img'},format=raw,if=ide", "-boot", "d"],
                         capture_output=True, text=True, timeout=3600, check=False)
    assert run.returncode == 0, run.stderr
    out = subprocess.run(["mtype", "-i", image, "::/RESULT.TXT"], capture_output=True, text=True, check=True,
                         env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    assert "autotest: done" in out and "pending" not in out, out
