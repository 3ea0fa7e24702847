"""`rescue-build winpe` on a synthetic base (tests/winpe/synthetic.py): what goes into the ISO and the
boot.wim, that the base is only read, that rescue.exe and the start files work under Wine, and the
refusals (old or non-x64 base, missing DLL, missing tool, incomplete base)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builder import winpe, winpe_base
from builder.errors import BuildError
from builder.pe_imports import missing_dlls
from builder.wine import Prefix
from core import __version__
from tests.winpe import synthetic
from tests.winpe.conftest import Built, rescue_cli

STUB_C = Path(__file__).with_name("stub_tool.c")


def _wim_listing(wim: Path, detailed: bool = False) -> str:
    return synthetic.run("wimdir", str(wim), "1", *(["--detailed"] if detailed else []))


def _extract_iso(iso: Path, dest: Path) -> Path:
    synthetic.run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(dest))
    return dest


def test_el_torito_has_bios_and_uefi_entries_holding_the_base_boot_files(winpe_built: Built) -> None:
    report = synthetic.run("xorriso", "-indev", str(winpe_built.iso), "-report_el_torito", "plain")
    rows = re.findall(r"El Torito boot img :\s+(\d)\s+(BIOS|UEFI)\s+y\s+none\s+\S+\s+\S+\s+(\d+)\s+(\d+)", report)
    assert [(n, plat) for n, plat, _, _ in rows] == [("1", "BIOS"), ("2", "UEFI")], report
    fw = winpe_built.base.copype / "fwfiles"
    data = winpe_built.iso.read_bytes()
    for (_, _, _, lba), src in zip(rows, (fw / "etfsboot.com", fw / "efisys.bin")):
        want = src.read_bytes()
        assert data[int(lba) * 2048:int(lba) * 2048 + len(want)] == want, src.name
    paths = dict(re.findall(r"El Torito img path :\s+(\d)\s+(\S+)", report))
    # on the medium where the base's own media folder spells them (Boot/, EFI/), not beside in lower case
    assert paths == {"1": "/Boot/etfsboot.com", "2": "/EFI/Microsoft/Boot/efisys.bin"}


def test_iso_carries_the_base_boot_files_the_new_boot_wim_and_the_marker(winpe_built: Built,
                                                                         tmp_path: Path) -> None:
    iso = synthetic.tree_hashes(_extract_iso(winpe_built.iso, tmp_path / "iso"))
    media = winpe_built.base.copype / "media"
    for rel, digest in synthetic.tree_hashes(media).items():
        if rel != "sources/boot.wim":
            assert iso[rel] == digest, rel
    assert iso["sources/boot.wim"] == synthetic.tree_hashes(winpe_built.boot_wim.parent)[winpe_built.boot_wim.name]
    manifest = json.loads(winpe_built.manifest.read_text())
    assert (tmp_path / "iso" / "rescue-pe.id").read_bytes() == manifest["build_id"].encode() + b"\r\n"
    script = winpe_built.drivers.parent / "autotest.cmd"
    assert (tmp_path / "iso" / "rescue-run.cmd").read_bytes() == script.read_bytes()
    assert not any(k.lower().startswith("boot/") and k.lower() != k and k.lower() in iso for k in iso)


def test_boot_wim_holds_the_rescue_folder_as_built(winpe_built: Built, tmp_path: Path) -> None:
    synthetic.run("wimextract", str(winpe_built.boot_wim), "1", "/rescue", "/rescue-pe",
                  f"--dest-dir={tmp_path}")
    assert synthetic.tree_hashes(tmp_path / "rescue") == synthetic.tree_hashes(winpe_built.rescue)
    assert (tmp_path / "rescue-pe" / "drivers" / "storage" / "fakestor.inf").read_bytes() == \
        (winpe_built.drivers / "storage" / "fakestor.inf").read_bytes()


def test_every_file_of_the_base_image_is_still_there_unchanged(winpe_built: Built) -> None:
    before = _wim_listing(winpe_built.base.copype / "media" / "sources" / "boot.wim").splitlines()
    after = _wim_listing(winpe_built.boot_wim).splitlines()
    assert set(before) <= set(after)
    added = sorted(set(after) - set(before))
    assert all(p.startswith(("/rescue/", "/rescue-pe")) or p in ("/rescue", "/Windows/System32/winpeshl.ini")
               for p in added), added
    assert "/rescue/rescue.exe" in after
    # content: the SHA-1 of every stream is the same except the start file we replace
    def hashes(wim: Path) -> dict[str, str]:
        out, path = {}, ""
        for line in _wim_listing(wim, detailed=True).splitlines():
            if line.startswith("Full Path"):
                path = line.split("\"")[1]
            elif line.startswith("Hash") and path:
                out[path] = line.split("=")[1].strip()
                path = ""  # the unnamed data stream's hash only
        return out

    old, new = hashes(winpe_built.base.copype / "media" / "sources" / "boot.wim"), hashes(winpe_built.boot_wim)
    assert len(old) > 20
    changed = sorted(p for p in old if new.get(p) != old[p])
    assert changed == ["/Windows/System32/startnet.cmd"], changed


def test_the_base_is_only_read(winpe_built: Built) -> None:
    assert synthetic.tree_hashes(winpe_built.base.copype) == winpe_built.base.hashes


def test_manifest_says_what_went_in(winpe_built: Built) -> None:
    m = json.loads(winpe_built.manifest.read_text())
    assert m["rescue_version"] == __version__
    assert m["base"]["kind"] == "adk" and m["base"]["index"] == 1 and m["base"]["version"] == "10.0.19041"
    assert m["base"]["boot_wim_sha256"] == winpe_base.sha256(winpe_built.base.copype / "media/sources/boot.wim")
    assert m["boot_wim_sha256"] == winpe_base.sha256(winpe_built.boot_wim)
    assert m["rescue_folder"]["tree_sha256"] == winpe.tree_hash(winpe_built.rescue)
    assert [d["inf"] for d in m["drivers"]] == ["storage/fakestor.inf"]
    assert m["run_script"]["name"] == "autotest.cmd" and m["iso"] == "rescue-pe.iso"
    assert "sources/boot.wim" in m["medium_files"] and "rescue-pe.id" in m["medium_files"]


def test_extracted_rescue_exe_runs_under_wine(winpe_built: Built, wine_prefix: Prefix, tmp_path: Path) -> None:
    synthetic.run("wimextract", str(winpe_built.boot_wim), "1", "/rescue", f"--dest-dir={tmp_path}")
    # through a drive letter, as on WinPE: the bootloader cannot open itself by a host path (no Z: drive)
    wine_prefix.map_drive("R", tmp_path)
    try:
        proc = wine_prefix.run(["R:\\rescue\\rescue.exe", "--version"], timeout=300)
    finally:
        (wine_prefix.path / "dosdevices" / "r:").unlink()
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
    assert re.search(r"^rescue, version \d+\.\d+\.\d+", out), out


def test_start_files_init_load_drivers_and_run_the_boot_medium_script_only(winpe_built: Built,
                                                                          wine_prefix: Prefix,
                                                                          tmp_path: Path) -> None:
    """startnet.cmd as WinPE runs it (winpeshl.ini: cmd /k startnet.cmd), under Wine's cmd, with the
    image as X: and WinPE's own tools (wpeinit, drvload, wpeutil) as stubs that log their calls: the
    medium with this build's id (F:) runs its rescue-run.cmd (rescue on PATH, logged to the medium), a
    medium of another build (E:) does not, then it powers off."""
    x = tmp_path / "x"
    synthetic.run("wimapply", str(winpe_built.boot_wim), "1", str(x))
    ini = (x / "Windows/System32/winpeshl.ini").read_bytes().decode()
    assert "cmd.exe, /k %SYSTEMROOT%\\System32\\startnet.cmd" in ini and "\r\n" in ini
    calls = tmp_path / "calls"
    calls.mkdir()
    # WinPE's tools as programs (a batch called without "call" would not return), in a folder of their own
    # on PATH: from X:\Windows\System32 they would load the synthetic image's stand-in DLLs
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for tool in ("wpeinit", "drvload", "wpeutil"):
        synthetic.run("x86_64-w64-mingw32-gcc", "-O", "-s", f"-DNAME=\"{tool}\"", "-o", str(stubs / f"{tool}.exe"),
                      str(STUB_C))
    medium = _extract_iso(winpe_built.iso, tmp_path / "medium")
    for p in medium.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # writable, as a USB stick is
    other = tmp_path / "other"
    other.mkdir()
    (other / "rescue-pe.id").write_bytes(b"0123456789abcdef\r\n")
    (other / "rescue-run.cmd").write_bytes(b"echo WRONG MEDIUM> Z:\\wrong.txt\r\n")
    prefix = wine_prefix
    prefix.map_drive("X", x)
    prefix.map_drive("E", other)
    prefix.map_drive("F", medium)
    prefix.map_drive("Z", calls)
    prefix.map_drive("S", stubs)
    try:
        cmd = ["C:\\windows\\system32\\cmd.exe", "/c", "X:\\Windows\\System32\\startnet.cmd"]
        proc = prefix.run(cmd, env={"WINEPATH": "S:\\"}, timeout=300)
    finally:
        for letter in "XEFZS":
            (prefix.path / "dosdevices" / f"{letter.lower()}:").unlink(missing_ok=True)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert (medium / "rescue-run.log").exists(), out
    log = (medium / "rescue-run.log").read_bytes().decode(errors="replace")
    assert "rescue-run: start" in log and "medium=F:" in log, log + out
    assert "autotest: start" in log and "autotest: rescue exit 0" in log, log
    assert re.search(r"\d+\.\d+\.\d+", log.split("autotest: start")[1]), log  # rescue --version's line
    assert "rescue-run: exit 0 " in log, log
    called = (calls / "calls.txt").read_text().split("\n")
    assert [c.strip() for c in called if c.strip()] == [
        "wpeinit", "drvload X:\\rescue-pe\\drivers\\storage\\fakestor.inf", "wpeutil shutdown"], called
    assert not (calls / "wrong.txt").exists()


def test_base_older_than_winpe_10_is_refused_in_one_line(tmp_path: Path) -> None:
    old = synthetic.copype(tmp_path, major=6, minor=1)
    hashes = synthetic.tree_hashes(old)
    rescue = tmp_path / "r"
    rescue.mkdir()
    (rescue / "rescue.exe").write_bytes(b"MZ")
    proc = rescue_cli("winpe", "--adk-media", str(old), "--rescue-dir", str(rescue), "--out",
                      str(tmp_path / "x.iso"), "--work", str(tmp_path / "w"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is WinPE 6.1" in proc.stderr and "needs WinPE 10" in proc.stderr
    assert not (tmp_path / "x.iso").exists() and synthetic.tree_hashes(old) == hashes


@pytest.mark.parametrize("arch,what", [(0, "x86 (32-bit)"), (12, "ARM64"), (5, "ARM")])
def test_a_base_not_x64_is_refused(tmp_path: Path, arch: int, what: str) -> None:
    wim = synthetic.boot_wim(tmp_path, tmp_path / "boot.wim", arch=arch)
    with pytest.raises(BuildError) as e:
        winpe_base.choose_image(wim, winpe_base.wim_images(wim, tmp_path / "x.xml"), None)
    assert f"is {what}: rescue.exe is x64" in e.value.message


def test_install_iso_base_builds_from_its_pe_image_and_boot_files(rescue_folder: Path, tmp_path: Path) -> None:
    iso = synthetic.install_iso(tmp_path, tmp_path / "win.iso")
    proc = rescue_cli("winpe", "--windows-iso", str(iso), "--rescue-dir", str(rescue_folder), "--out",
                      str(tmp_path / "pe.iso"), "--work", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"image 1 ({synthetic.PE_NAME}, WinPE 10.0.19041)" in proc.stdout
    report = synthetic.run("xorriso", "-indev", str(tmp_path / "pe.iso"), "-report_el_torito", "plain")
    assert dict(re.findall(r"El Torito img path :\s+(\d)\s+(\S+)", report)) == {
        "1": "/boot/etfsboot.com", "2": "/efi/microsoft/boot/efisys.bin"}
    on_iso = synthetic.run("xorriso", "-indev", str(tmp_path / "pe.iso"), "-find", "/", "-type", "f")
    assert "'/sources/boot.wim'" in on_iso and "install.wim" not in on_iso


def test_install_iso_base_extracts_only_boot_files_and_the_pe_image(tmp_path: Path) -> None:
    iso = synthetic.install_iso(tmp_path, tmp_path / "win.iso")
    base = winpe_base.from_iso(iso, tmp_path / "x")
    assert not list((tmp_path / "x").rglob("install.wim"))
    assert base.etfsboot == tmp_path / "x/boot/etfsboot.com"
    assert base.efisys == tmp_path / "x/efi/microsoft/boot/efisys.bin"
    images = winpe_base.wim_images(base.boot_wim, tmp_path / "x.xml")
    assert [i.name for i in images] == [synthetic.PE_NAME, synthetic.SETUP_NAME]
    assert winpe_base.choose_image(base.boot_wim, images, None).index == 1
    assert winpe_base.choose_image(base.boot_wim, images[1:], None).index == 2  # Setup only: taken


def test_setup_image_is_kept_from_starting_setup(rescue_folder: Path, tmp_path: Path) -> None:
    """Index 2 of an install ISO's boot.wim launches Setup through its winpeshl.ini: ours replaces it."""
    wim = synthetic.boot_wim(tmp_path, tmp_path / "boot.wim", setup_index=True)
    media = tmp_path / "media"
    synthetic.media_files(media, iso_layout=True)
    synthetic.el_torito_images(media, "efi/microsoft/boot/efisys.bin", "boot/etfsboot.com")
    built = winpe.assemble(winpe_base.from_media(wim, media), 2, rescue_folder, tmp_path / "w")
    synthetic.run("wimextract", str(built.boot_wim), "1", "/Windows/System32/winpeshl.ini", f"--dest-dir={tmp_path}")
    assert b"setup.exe" not in (tmp_path / "winpeshl.ini").read_bytes()
    assert "/sources/setup.exe" in _wim_listing(built.boot_wim)  # the rest of the image is kept


def test_a_dll_missing_from_winpe_is_named(rescue_folder: Path) -> None:
    names = set(synthetic.system32_dlls())
    assert missing_dlls(rescue_folder, names) == {}
    gone = missing_dlls(rescue_folder, names - {"kernel32.dll"})
    assert "kernel32.dll" in gone and "rescue.exe" in gone["kernel32.dll"]


def test_incomplete_base_is_refused_naming_the_file(tmp_path: Path) -> None:
    d = synthetic.copype(tmp_path)
    (d / "fwfiles" / "efisys.bin").unlink()
    with pytest.raises(BuildError) as e:
        winpe_base.from_adk(d)
    assert "efisys.bin is missing" in e.value.message


def test_missing_wimlib_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder import host
    from builder.errors import MissingTool

    monkeypatch.setattr(host, "_EXTRA_PATH", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingTool) as e:
        host.require(*winpe.WIM_TOOLS)
    assert e.value.message == "wiminfo is missing: install the Debian package wimtools (apt-get install wimtools)"
    with pytest.raises(MissingTool) as e:
        host.require("7z")
    assert "apt-get install p7zip-full" in e.value.message
