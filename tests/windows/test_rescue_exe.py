"""Issue 13, requirement 5 and its proof: the rescue.exe that `rescue-build windows` makes on Debian.

One build per session (tests/windows/conftest.py). Checked here without Wine: the test-only
ProcessPrng shim is nowhere in the output, the Python DLLs are the signed ones of the pinned sdist, and
every DLL the bundle imports is in it or in WinPE 10's System32. Under Wine (about 2.5 s per call, so
few calls): the file-based CLI tests (tests/cli/test_cli.py, as tests/media/test_frozen.py runs them
against the Linux frozen binary; the other CLI files need a pty, loop devices or Linux console
keymaps), and images interchangeable both ways with the Linux CLI, encrypted and split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder import pe_imports, wine
from builder.errors import BuildError
from builder.windows import WindowsBuild, signed_files
from tests.images import run_rescue, small_disk
from tests.windows.conftest import WINE_CACHE

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "windows and linux"
# building (first run) + the CLI file under Wine: above the ini-wide 900 s
pytestmark = pytest.mark.timeout(2400)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_layout_and_help(windows_build: WindowsBuild, rescue_exe: Path) -> None:
    folder = windows_build.folder
    assert (folder / "rescue.exe").is_file() and (folder / "_internal").is_dir()
    assert (folder / "_internal" / "VCRUNTIME140.dll").is_file()  # WinPE cannot install the VC++ runtime
    names = {p.name.lower() for p in folder.rglob("*")}
    assert not names & {"pyudev", "pyfuse3", "trio", "_wmi.pyd"}, names & {"pyudev", "pyfuse3", "trio", "_wmi.pyd"}
    r = subprocess.run([str(rescue_exe), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "backup" in r.stdout, r.stderr


def test_shim_is_not_in_the_output(windows_build: WindowsBuild) -> None:
    shim = wine.build_prng_shim(WINE_CACHE)
    shim_digest = sha256(shim)
    files = [p for p in windows_build.folder.rglob("*") if p.is_file()]
    assert files
    assert not [p for p in files if p.name.lower() == shim.name.lower()]
    assert not [p for p in files if p.stat().st_size == shim.stat().st_size and sha256(p) == shim_digest]
    # A PE file may import bcryptprimitives.dll (Rust's std does): that is WinPE's own System32 DLL, which
    # the shim only stands in for under Wine; the output must not carry any file of that name.
    imports = pe_imports.bundle_imports(windows_build.folder)
    importers = [f for f, dlls in imports.items() if shim.name.lower() in (d.lower() for d in dlls)]
    system32, _ = pe_imports.declared_system32()
    assert shim.name.lower() in system32 or not importers, importers


def test_python_dlls_are_the_signed_ones(windows_build: WindowsBuild) -> None:
    """The interpreter's DLLs and the VC++ runtime in the output are byte for byte the pinned sdist's, and
    the PSF's Authenticode signature on the interpreter's DLLs still covers their bytes."""
    python = wine.windows_python(WINE_CACHE)
    internal = windows_build.folder / "_internal"
    signed = {p.name.lower() for p in signed_files(python)}
    shipped = [p for p in internal.iterdir() if p.name.lower() in signed | {"vcruntime140.dll"}]
    assert {p.name.lower() for p in shipped} == (signed - {"python.exe"}) | {"vcruntime140.dll"}, shipped
    for p in shipped:
        original = next(q for q in python.iterdir() if q.name.lower() == p.name.lower())
        assert sha256(p) == sha256(original), p.name
        if p.name.lower() in signed:
            wine.check_signature(p)


def test_every_imported_dll_is_in_the_bundle_or_winpe(windows_build: WindowsBuild, tmp_path: Path) -> None:
    assert pe_imports.check_bundle(windows_build.folder) == windows_build.dlls >= 20
    # the build lists what it takes from the system: the Windows API, never a DLL the bundle carries
    system = pe_imports.system_dlls(windows_build.folder)
    listed = next(line for line in windows_build.log if line.startswith("from WinPE's System32: "))
    files, api_sets = listed.split(": ", 1)[1].split(" and ")
    assert files.split(", ") == [d for d in system if not d.startswith("api-ms-")]
    assert api_sets == f"{sum(d.startswith('api-ms-') for d in system)} API sets"
    assert {"kernel32.dll", "bcryptprimitives.dll"} <= set(system)
    assert not {"vcruntime140.dll", "python313.dll", "libffi-8.dll"} & set(system)
    # The check fails naming the DLL: the same bundle without libffi (which _ctypes.pyd imports).
    copy = tmp_path / "bundle"
    shutil.copytree(windows_build.folder, copy)
    (copy / "_internal" / "libffi-8.dll").unlink()
    with pytest.raises(BuildError) as e:
        pe_imports.check_bundle(copy)
    assert "libffi-8.dll, imported by _internal/_ctypes.pyd" in e.value.message
    assert "\n" not in e.value.message


# Tests of tests/cli/test_cli.py whose subject does not exist on Windows, each with the reason; rescue.exe
# answers these differently by design (rescue/platforms.py: exit 6, one line naming the Linux media).
NOT_ON_WINDOWS = {
    "test_backup_folder_in_ram_refused_unless_allowed": "RAM folders are found as tmpfs mounts, a Linux notion",
    "test_scratch_folder_of_a_shrink_in_ram_refused_unless_allowed": "shrinking NTFS needs ntfsresize: exit 6",
    "test_a_command_group_alone_shows_its_help_not_an_error": "`rescue bcd` needs ntfs-3g and mtools: exit 6",
    "test_fix_boot_shows_its_plan_first_and_leaves_a_disk_without_windows_alone": "fix-boot needs ntfs-3g: exit 6",
}


def test_cli_suite_against_rescue_exe(rescue_exe: Path) -> None:
    """The file-based CLI tests, as tests/media/test_frozen.py runs them against the Linux frozen binary
    (the other files of tests/cli need a pty, loop devices or the Linux console's keymaps)."""
    deselect = [f"--deselect=tests/cli/test_cli.py::{name}" for name in NOT_ON_WINDOWS]
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/cli/test_cli.py", "-q", "-p", "no:cacheprovider",
                        *deselect],
                       cwd=ROOT, env={**os.environ, "RESCUE_EXE": str(rescue_exe)}, capture_output=True, text=True,
                       timeout=1800, check=False)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    last = r.stdout.splitlines()[-1]
    assert " passed" in last and "failed" not in last and f"{len(NOT_ON_WINDOWS)} deselected" in last, last


def _exe(rescue_exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RESCUE_PASSWORD": PASSWORD}
    return subprocess.run([str(rescue_exe), *args], capture_output=True, text=True, env=env, timeout=600,
                          check=False)


def _restore_check(restore: subprocess.CompletedProcess[str], target: Path, source: Path) -> None:
    assert restore.returncode == 0, restore.stderr
    assert sha256(target) == sha256(source)


def test_images_interchangeable_both_ways(rescue_exe: Path, tmp_path: Path) -> None:
    """Encrypted, split in 8 MiB volumes: made by rescue.exe and restored bit-exact by the Linux CLI, and
    made by the Linux CLI and restored bit-exact by rescue.exe."""
    src = small_disk(tmp_path / "src.img", seed=13)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    for maker, name in ((_exe, "by-exe"), (None, "by-linux")):
        args = ("backup", str(src), str(tmp_path / name), "--password-file", str(pw), "--split", "8M", "--json")
        r = maker(rescue_exe, *args) if maker else run_rescue(*args)
        assert r.returncode == 0, (name, r.stderr)
        assert json.loads(r.stdout)["id"]
        assert len(list((tmp_path / name).rglob("*"))) > 3  # split into several volume files
    for name, restorer in (("by-exe", None), ("by-linux", _exe)):
        target = tmp_path / f"{name}.restored"
        with target.open("wb") as f:
            f.truncate(src.stat().st_size)
        args = ("restore", str(tmp_path / name), str(target), "--yes")
        r = restorer(rescue_exe, *args) if restorer else run_rescue(*args, env={"RESCUE_PASSWORD": PASSWORD})
        _restore_check(r, target, src)
