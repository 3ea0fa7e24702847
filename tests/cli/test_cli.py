"""The `rescue` CLI as a user runs it: exit codes, one-line errors, JSON, confirmation, dry run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from core.errors import all_error_classes, all_warning_classes, exit_codes
from tests.images import run_rescue, small_disk

ROOT = Path(__file__).resolve().parents[2]


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("rescue: error:")]
    assert len(errors) == 1, stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli")
    src = small_disk(base / "src.img")
    pwfile = base / "key.txt"
    pwfile.write_text("s3cret words\n")
    r = run_rescue("backup", str(src), str(base / "bk"), "--password-file", str(pwfile), "--split", "8M",
                   "--level", "5", "--json")
    assert r.returncode == 0, r.stderr
    return {"src": src, "bk": base / "bk", "pw": pwfile, "base": base, "result": Path(json.loads(r.stdout)["id"])}


def test_list_json_fields(setup: dict[str, Path]) -> None:
    r = run_rescue("list", str(setup["bk"]), "--json")
    assert r.returncode == 0
    [img] = json.loads(r.stdout)
    for key in ("id", "kind", "parent", "time", "bytes", "complete"):
        assert key in img
    assert img["kind"] == "full" and img["complete"] is True and img["parent"] is None
    assert img["time"].startswith("20") and "T" in img["time"]


def test_verify_and_restore_round_trip(setup: dict[str, Path], tmp_path: Path) -> None:
    r = run_rescue("verify", str(setup["bk"]), "--password-file", str(setup["pw"]))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    target = tmp_path / "t.img"
    target.write_bytes(b"")
    os.truncate(target, setup["src"].stat().st_size)
    r = run_rescue("restore", str(setup["bk"]), str(target), "--yes", env={"RESCUE_PASSWORD": "s3cret words"})
    assert r.returncode == 0, r.stderr
    assert digest(target) == digest(setup["src"])


def test_restore_needs_confirmation_and_dry_run_writes_nothing(setup: dict[str, Path], tmp_path: Path) -> None:
    """R-43/R-44: no --yes and no terminal -> refused; --dry-run shows the plan and writes nothing."""
    target = tmp_path / "t.img"
    target.write_bytes(b"\x77" * setup["src"].stat().st_size)
    before = digest(target)
    r = run_rescue("restore", str(setup["bk"]), str(target), "--password-file", str(setup["pw"]))
    assert r.returncode == 3
    one_line_error(r.stderr)
    assert "--yes" in r.stderr
    r = run_rescue("restore", str(setup["bk"]), str(target), "--password-file", str(setup["pw"]), "--dry-run",
                   "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["dry_run"] is True and plan["plan"]["scheme"] == "mbr"
    assert [p["number"] for p in plan["plan"]["partitions"]] == [1, 2]
    assert digest(target) == before


def test_wrong_password(setup: dict[str, Path], tmp_path: Path) -> None:
    """R-20: specific exit code, one line, nothing written."""
    target = tmp_path / "t.img"
    target.write_bytes(b"\x77" * setup["src"].stat().st_size)
    before = digest(target)
    for args in (["verify", str(setup["bk"])], ["restore", str(setup["bk"]), str(target), "--yes"]):
        r = run_rescue(*args, env={"RESCUE_PASSWORD": "not it"})
        assert r.returncode == 30, r.stderr
        one_line_error(r.stderr)
        assert "Wrong password" in r.stderr
    r = run_rescue("verify", str(setup["bk"]))
    assert r.returncode == 31
    one_line_error(r.stderr)
    assert digest(target) == before


def test_corrupt_volume_names_the_block(setup: dict[str, Path], tmp_path: Path) -> None:
    import shutil
    bk = tmp_path / "bk"
    shutil.copytree(setup["bk"], bk)
    vol = sorted(bk.glob("*.v0001"))[0]
    data = bytearray(vol.read_bytes())
    data[5000] ^= 0x40
    vol.write_bytes(bytes(data))
    r = run_rescue("verify", str(bk), "--password-file", str(setup["pw"]), "--json")
    assert r.returncode == 20
    one_line_error(r.stderr)
    assert vol.name in r.stderr and "chunk 0" in r.stderr
    assert r.stderr.count("Integrity check failed") == 1, r.stderr  # the prefix once, not once per chunk
    out = json.loads(r.stdout)
    assert out["exit_code"] == 20 and out["result"]["ok"] is False


def test_target_is_source_refused(setup: dict[str, Path], tmp_path: Path) -> None:
    """R-40 (file aliases): the backup's own source through a symlink is refused as a target? The image
    folder's files are what restore must never overwrite: a target inside the folder is refused."""
    link = tmp_path / "alias.img"
    vol = sorted(setup["bk"].glob("*.v0001"))[0]
    link.symlink_to(vol)
    r = run_rescue("restore", str(setup["bk"]), str(link), "--yes", "--password-file", str(setup["pw"]))
    assert r.returncode == 40, r.stderr
    one_line_error(r.stderr)


def test_read_only_target_file_refused(setup: dict[str, Path], tmp_path: Path) -> None:
    """A mode-444 target file is refused by restore and clone (exit 40, one line), also as root."""
    target = tmp_path / "t.img"
    target.write_bytes(b"\x77" * setup["src"].stat().st_size)
    target.chmod(0o444)
    before = digest(target)
    for args in (["restore", str(setup["bk"]), str(target), "--yes", "--password-file", str(setup["pw"])],
                 ["clone", str(setup["src"]), str(target), "--yes"]):
        r = run_rescue(*args)
        assert r.returncode == 40, (args, r.stderr)
        one_line_error(r.stderr)
        assert "read-only" in r.stderr
    assert digest(target) == before


def test_usage_errors(setup: dict[str, Path], tmp_path: Path) -> None:
    cases = [
        (["backup", str(setup["src"]), str(tmp_path / "x"), "--level", "40"], 3),
        (["backup", str(setup["src"]), str(tmp_path / "x"), "--partitions", "9"], 3),
        (["backup", str(setup["src"]), str(tmp_path / "x"), "--split", "1M"], 3),
        (["backup", str(tmp_path / "missing.img"), str(tmp_path / "x")], 4),
        (["verify", str(tmp_path / "nofolder")], 7),
        (["verify", str(setup["bk"]), "--image", "nope", "--password-file", str(setup["pw"])], 9),
        (["frobnicate"], 3),
    ]
    for args, code in cases:
        r = run_rescue(*args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr


def test_click_usage_errors_are_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    """click's own errors (unknown option, missing argument, bad value) are one `rescue: error:` line, exit 3,
    and so are contradictory options."""
    for args in (["backup", str(setup["src"])], ["backup", "a", "b", "--level", "x"], ["verify", "f", "--frob"],
                 ["frobnicate"], ["backup", str(setup["src"]), str(tmp_path / "x"), "--incremental",
                                  "--differential"]):
        r = run_rescue(*args)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        one_line_error(r.stderr)
        assert r.stderr.count("\n") == 1 and "Usage:" not in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()


def test_help_lists_commands() -> None:
    """`rescue --help` fits the rescue media's 80x25 console (no scrollback), names every command and says
    what to type for more (the README is not on the medium)."""
    from rescue.cli import COMMANDS
    r = run_rescue("--help")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, r.stdout
    for cmd in set(COMMANDS) - {"help"}:
        assert f" {cmd}" in r.stdout, cmd
    assert "README" not in r.stdout and "rescue help exit-codes" in r.stdout
    r = run_rescue("help", "restore")
    assert r.returncode == 0 and r.stdout.startswith("Usage: rescue restore"), r.stdout


def test_unknown_command_suggests_the_closest() -> None:
    for typo, meant in (("restor", "restore"), ("dsks", "disks")):
        r = run_rescue(typo)
        assert r.returncode == 3
        one_line_error(r.stderr)
        assert f"did you mean {meant}?" in r.stderr, r.stderr


def test_exit_codes_documented_and_unique() -> None:
    """Exit codes are an API: unique per class, each documented by the class that declares it, and README's
    table and `rescue help exit-codes` list exactly what core/errors.py declares, in 80 columns."""
    codes: dict[int, str] = {}
    for cls in [*all_error_classes(), *all_warning_classes()]:
        if cls.__dict__.get("exit_code") is not None:
            assert cls.exit_code not in codes, f"{cls.__name__} reuses {cls.exit_code} of {codes.get(cls.exit_code)}"
            assert "meaning" in cls.__dict__, f"{cls.__name__} declares exit code {cls.exit_code} without a meaning"
            codes[cls.exit_code] = cls.__name__
    for cls in all_warning_classes()[1:]:
        assert 100 <= cls.exit_code <= 127, f"{cls.__name__}: specific warnings use 100-127"
    table = "| code | meaning |\n|---|---|\n" + "\n".join(f"| {c} | {m} |" for c, m in exit_codes())
    assert table + "\n\n" in (ROOT / "README.md").read_text(), "README.md's exit-code table should be:\n" + table
    r = run_rescue("help", "exit-codes")
    assert r.returncode == 0 and max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout
    listed = [int(line.split()[0]) for line in r.stdout.split("Exit codes")[1].splitlines()[1:]
              if line.strip()[:1].isdigit()]
    assert listed == [c for c, _ in exit_codes()] and set(codes) <= set(listed), r.stdout


def test_backup_warnings_have_their_own_codes(setup: dict[str, Path], tmp_path: Path) -> None:
    """A backup that had to store a filesystem sector by sector (unusable NTFS metadata) exits 103, one that
    read the backup GPT exits 104, each with one `rescue: warning:` line: scripts can tell them from 0."""
    import shutil
    import subprocess
    bad = tmp_path / "badntfs.img"
    shutil.copyfile(setup["src"], bad)
    with open(bad, "r+b") as f:
        part = 2048 * 512
        f.seek(part + 0x30)
        mft = part + int.from_bytes(f.read(8), "little") * 4096
        f.seek(mft + 6 * 1024 + 510)  # record 6 ($Bitmap): break its first sector's update sequence
        f.write(b"\x00\x00")
    r = run_rescue("backup", str(bad), str(tmp_path / "bk1"))
    assert r.returncode == 103, r.stderr
    assert [line for line in r.stderr.splitlines() if "imaged sector by sector" in line][0].startswith(
        "rescue: warning: partition 1: NTFS metadata unusable"), r.stderr

    gpt = tmp_path / "gpt.img"
    with open(gpt, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["sgdisk", "-n", "1:2048:+8M", "-t", "1:0700", str(gpt)], check=True, capture_output=True)
    with open(gpt, "r+b") as f:
        f.seek(512)
        f.write(bytes(512))  # the primary GPT header
    r = run_rescue("backup", str(gpt), str(tmp_path / "bk2"), "--json")
    assert r.returncode == 104, r.stderr
    assert any("primary GPT damaged" in w for w in json.loads(r.stdout)["warnings"])


def test_foreign_manifest_is_not_an_image_of_the_folder(setup: dict[str, Path], tmp_path: Path) -> None:
    """Another folder's manifest copied in (as it is, or over this folder's) is listed as incomplete or
    damaged, never as a complete image, and verify says precisely what is wrong."""
    import shutil
    other = tmp_path / "other"
    r = run_rescue("backup", str(setup["src"]), str(other), "--split", "8M")
    assert r.returncode == 0, r.stderr
    foreign = next(other.glob("*.manifest"))
    for name in (foreign.name, next(setup["bk"].glob("*.manifest")).name):
        bk = tmp_path / f"bk-{name}"
        shutil.copytree(setup["bk"], bk)
        shutil.copyfile(foreign, bk / name)
        listed = {i["id"]: i for i in json.loads(run_rescue("list", str(bk), "--json").stdout)}
        image = name.removesuffix(".manifest")
        assert listed[image]["complete"] is False, listed
        r = run_rescue("verify", str(bk), "--image", image, "--password-file", str(setup["pw"]))
        one_line_error(r.stderr)
        if name == foreign.name:  # copied in without its volumes
            assert r.returncode == 21 and f"volume {image}.v0001 is missing" in r.stderr, r.stderr
        else:  # in place of this folder's own manifest
            assert r.returncode == 20 and f"is the manifest of image {foreign.stem}" in r.stderr, r.stderr
            assert "DAMAGED" in run_rescue("list", str(bk)).stdout


def ram_folder(tmp: str) -> Path:
    from core.platform.ramfs import ram_filesystem
    if ram_filesystem("/dev/shm") is None:
        pytest.skip("no tmpfs at /dev/shm")
    return Path("/dev/shm") / f"rescue-test-{os.getpid()}-{tmp}"


def test_backup_folder_in_ram_refused_unless_allowed(setup: dict[str, Path], tmp_path: Path) -> None:
    """On the rescue media an unmounted /mnt/stick is RAM: a backup there would vanish at power-off."""
    import shutil
    ram = ram_folder(tmp_path.name)
    try:
        r = run_rescue("backup", str(setup["src"]), str(ram / "pc1"))
        assert r.returncode == 7, r.stderr
        one_line_error(r.stderr)
        assert "in RAM (tmpfs)" in r.stderr and "--allow-ram" in r.stderr and not ram.exists()
        r = run_rescue("backup", str(setup["src"]), str(ram / "pc1"), "--allow-ram")
        assert r.returncode == 0, r.stderr
        r = run_rescue("merge", str(ram / "pc1"))
        assert r.returncode == 7 and "in RAM" in r.stderr, r.stderr
    finally:
        shutil.rmtree(ram, ignore_errors=True)


def test_scratch_folder_of_a_shrink_in_ram_refused_unless_allowed(tmp_path: Path) -> None:
    from tests.factory import cached_disk_info
    info = cached_disk_info("mbr-small", size=700 << 20, hiberfil_magic=b"wake")  # as the resize tests have it
    target = tmp_path / "t.img"
    with open(target, "wb") as f:
        f.truncate(int(info.size * 0.6) >> 20 << 20)
    ram = ram_folder(tmp_path.name)
    ram.mkdir()
    try:
        r = run_rescue("clone", str(info.path), str(target), "--scratch", str(ram), "--dry-run")
        assert r.returncode == 7, r.stderr
        one_line_error(r.stderr)
        assert f"scratch folder {ram} is in RAM" in r.stderr
        r = run_rescue("clone", str(info.path), str(target), "--scratch", str(ram), "--dry-run", "--allow-ram")
        assert r.returncode == 0, r.stderr
    finally:
        os.rmdir(ram)


def test_a_command_group_alone_shows_its_help_not_an_error() -> None:
    """`rescue` or `rescue bcd` alone: a person finding their way gets the help on stdout, exit 0."""
    for args in ((), ("bcd",)):
        r = run_rescue(*args)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("Usage: rescue") and "error" not in r.stderr, (r.stdout[:200], r.stderr)


def test_list_fits_80_columns(setup: dict[str, Path], tmp_path: Path) -> None:
    """`rescue list` of a chain (an incremental under its full image) and an unfinished backup: no line
    wider than the rescue media's console, the reason of the unusable image on its own lines."""
    import shutil
    bk = tmp_path / "bk"
    shutil.copytree(setup["bk"], bk)
    r = run_rescue("backup", str(setup["src"]), str(bk), "--incremental", "--password-file", str(setup["pw"]))
    assert r.returncode == 0, r.stderr
    (bk / "20990101-000000-abcdef.v0001").write_bytes(b"x" * 100)  # a backup that never finished
    r = run_rescue("list", str(bk))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), r.stdout
    assert lines[0].split() == ["ID", "KIND", "TIME", "SIZE", "STATE"]
    assert any("└ " in line and " incremental " in line and line.endswith("ok, encrypted") for line in lines)
    assert any("INCOMPLETE" in line for line in lines), r.stdout


def test_fix_boot_shows_its_plan_first_and_leaves_a_disk_without_windows_alone(tmp_path: Path) -> None:
    """fix-boot prints what it would change before it asks; on a disk with no Windows and no boot partition
    it writes no boot code (a Linux disk's GRUB is not ours to replace)."""
    disk = small_disk(tmp_path / "plain.img")
    before = disk.read_bytes()
    r = run_rescue("fix-boot", str(disk))  # no terminal, no --yes: the plan, then a refusal
    assert r.returncode == 3 and r.stdout.startswith(f"disk {disk}:"), (r.stdout, r.stderr)
    r = run_rescue("fix-boot", str(disk), "--yes", "--json")
    assert r.returncode == 102, r.stderr
    assert not any(c["area"] == "boot-record" for c in json.loads(r.stdout)["changes"]), r.stdout
    assert disk.read_bytes() == before
