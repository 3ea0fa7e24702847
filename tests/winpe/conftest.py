"""The WinPE media build, once per test session: a synthetic copype base (tests/winpe/synthetic.py), the
Windows build's rescue.exe folder, and one ``rescue-build winpe --out`` run over them (with a driver folder
and an unattended script), whose ISO, boot.wim and manifest the tests read.

The rescue folder is the Windows build's (tests/windows/conftest.py's session build, cached by source
hash, so the second fixture that asks for it copies the cached folder and does not build again).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder import wine
from builder.windows import build_windows
from tests.windows.conftest import WINE_CACHE
from tests.winpe import synthetic

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("wimcapture", "wiminfo", "wimdir", "wimextract", "xorriso", "mkfs.vfat", "mcopy", "mdir", "7z",
         "syslinux", "sfdisk")
RUN_SCRIPT = "@echo off\r\necho autotest: start\r\nrescue --version\r\necho autotest: rescue exit %ERRORLEVEL%\r\n"


def need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")


def rescue_cli(*args: str, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``rescue-build ARGS`` as a user runs it (this interpreter, the checkout on PYTHONPATH)."""
    return subprocess.run([sys.executable, "-c", "from builder.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@dataclass(frozen=True)
class Base:
    copype: Path
    hashes: dict[str, str]  # every file of the base, before the build


@dataclass(frozen=True)
class Built:
    base: Base
    rescue: Path
    iso: Path
    boot_wim: Path
    manifest: Path
    drivers: Path
    work: Path
    stdout: str


@pytest.fixture(scope="session")
def winpe_base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    need_tools()
    work = tmp_path_factory.mktemp("winpe-base")
    d = synthetic.copype(work)
    return Base(d, synthetic.tree_hashes(d))


@pytest.fixture(scope="session")
def rescue_folder() -> Path:
    """The frozen rescue.exe folder of `rescue-build windows`, built into the same folders as
    tests/windows/conftest.py builds it: in one run the second call finds the freeze cached and copies it."""
    from tests.factory import cache_dir

    # The same folders and download cache as tests/windows: one freeze, one download per run.
    return build_windows(cache_dir() / "rescue-windows", cache_dir() / "rescue-build-work", WINE_CACHE).folder


@pytest.fixture(scope="session")
def winpe_built(winpe_base: Base, rescue_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("winpe-out")
    drivers = out / "drivers"
    (drivers / "storage").mkdir(parents=True)
    (drivers / "storage" / "fakestor.inf").write_bytes(b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\n")
    (drivers / "storage" / "fakestor.sys").write_bytes(b"MZ driver")
    script = out / "autotest.cmd"
    script.write_bytes(RUN_SCRIPT.encode())
    proc = rescue_cli("winpe", "--adk-media", str(winpe_base.copype), "--rescue-dir", str(rescue_folder),
                      "--out", str(out / "rescue-pe.iso"), "--drivers", str(drivers), "--run-script", str(script),
                      "--work", str(out / "work"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Built(winpe_base, rescue_folder, out / "rescue-pe.iso", out / "rescue-pe.boot.wim",
                 out / "rescue-pe.manifest.json", drivers, out / "work", proc.stdout)


@pytest.fixture(scope="session")
def wine_prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[wine.Prefix]:
    """One Wine prefix for the session (each prefix costs seconds), with the test-only ProcessPrng shim
    that lets the bundle's Rust extensions load under Wine 8."""
    from tests.factory import cache_dir

    prefix = wine.Prefix(tmp_path_factory.mktemp("winpe-wine"), shim=wine.build_prng_shim(cache_dir()))
    yield prefix
    prefix.close()
