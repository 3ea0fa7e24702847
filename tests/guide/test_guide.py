"""The guide driven as a person would, through a real 80x25 terminal (tmux), on image files: encrypted
full and incremental backups, a restore of the latest point checked bit for bit, refusals in the
engine's words with nothing written, a clone, a cancelled backup, a wrong password asked again then given up,
a Windows disk restored onto a smaller one, checked file by file, a Windows startup repaired, and
files taken out of a backup."""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from core.engine.repo import Repository
from core.platform.mounts import mounts
from tests.conftest import need_root_tools
from tests.disk.loops import loop
from tests.engine.test_resize_clone import check_disk, clean_source, files, new_disk
from tests.guide.terminal import Terminal, flat
from tests.ntfs3g import file_hashes, partition_hashes
from tests.repair.repair_helpers import clean_system_hive, disk_copy
from core.repair import show_disk
from tests.images import run_rescue, slow_to_compress, small_disk

pytestmark = pytest.mark.slow
MiB = 1 << 20
PASSWORD = "correct horse"
MBR_SIGNATURE = 440  # offset of the MBR's disk signature, which BCD devices and drive letters name
# Main screen, top to bottom
BACKUP, RESTORE, CLONE, FILES, REPAIR, KEYBOARD, SHELL, POWER_OFF, RESTART = 0, 1, 2, 3, 4, 5, 6, 7, 8


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def blank(p: Path, size: int) -> Path:
    with open(p, "wb") as f:
        f.truncate(size)
    return p


@pytest.fixture
def term(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def start(term: list[Terminal], tmp: Path, name: str, disks: list[Path], *args: str) -> Terminal:
    t = Terminal(tmp, name, disks, args)
    term.append(t)
    t.wait("What do you want to do?")
    return t


def choose(t: Terminal, index: int) -> None:
    t.keys(*["Down"] * index, "Enter")


def choose_line(t: Terminal, screen: str, text: str) -> None:
    """Choose the line of the menu on ``screen`` that holds ``text``, counting the choices above it: they
    start with " > " or "   " (a long one goes on, less indented, on the next line)."""
    lines = screen.splitlines()
    starts = [n for n, line in enumerate(lines) if re.match(r" (> |  )\S", line)]
    choose(t, starts.index(next(n for n, line in enumerate(lines) if text in line)))


def home(t: Terminal) -> None:
    """Enter on a result screen: back to the main screen."""
    t.keys("Enter")
    t.wait("What do you want to do?")


def leave(t: Terminal, choice: int) -> int:
    """From a result screen, through the main screen, out of the guide: its exit code."""
    home(t)
    choose(t, choice)
    return t.exit_code()


def back_up(t: Terminal, folder: Path, *, disk: int = 0, incremental: bool = False, encrypt: bool = True,
            level: int = 0, full_again: bool = False, wrong_first: bool = False) -> str:
    """From the main screen through a backup to its result screen; returns that screen."""
    choose(t, BACKUP)
    t.wait("Which disk do you want to back up?")
    choose(t, disk)
    t.wait("Where should the backup go?")
    t.keys("Enter")  # "Type a folder"
    t.wait("Folder:")
    t.type(str(folder))
    if incremental:
        t.wait("Only what changed since the last backup")
        choose(t, 0)
        t.wait("The earlier backups are encrypted: type their password.")
        t.type("wrong password" if wrong_first else PASSWORD)
    else:
        if full_again:
            t.wait("Everything again (full backup)")
            choose(t, 1)
        t.wait("Encrypt the backup?")
        choose(t, 0 if encrypt else 1)
        if encrypt:
            t.wait("Choose the password of this backup")
            t.type(PASSWORD)
            t.wait("Type the same password again")
            t.type(PASSWORD)
    t.wait("How much should the backup be compressed?")
    choose(t, level)
    t.wait("Start the backup")
    t.keys("Enter")
    if level == 2:
        return t.wait("Step: backup")
    if wrong_first:  # the engine finds it before writing anything, and the guide asks again
        t.wait("Wrong password for image")
        t.type(PASSWORD)
    return t.wait("Log: ")


def restore_latest_onto(t: Terminal, folder: Path, disk: int, encrypted: bool = True) -> str:
    """From the main screen to the password (or the plan) of the latest restore point of ``folder``,
    target ``disk``; returns the screen of the restore points."""
    choose(t, RESTORE)
    t.wait("Where is the backup?")
    t.type(str(folder))
    points = t.wait("Which restore point?")
    t.keys("Enter")
    t.wait("Which disk should be overwritten")
    choose(t, disk)
    t.wait("This backup is encrypted: type its password." if encrypted else "Type the target's name")
    return points


def test_encrypted_full_then_incremental_then_restore_latest(term: list[Terminal], tmp_path: Path) -> None:
    src = small_disk(tmp_path / "src.img")
    target = blank(tmp_path / "target.img", src.stat().st_size)
    folder = tmp_path / "backups"
    t = start(term, tmp_path, "full-incremental-restore", [src, target])

    screen = back_up(t, folder)
    assert "Done." in screen and "full backup" in screen
    home(t)

    with open(src, "r+b") as f:  # the PC is used: change some of the raw partition
        f.seek(80 * MiB)
        f.write(random.Random(7).randbytes(MiB))
    screen = back_up(t, folder, incremental=True, wrong_first=True)
    assert "Done." in screen and "incremental backup" in screen
    images = Repository(str(folder)).list_images()
    assert [(i.kind, i.complete, i.encrypted) for i in images] == [("full", True, True),
                                                                   ("incremental", True, True)]
    home(t)

    before = digest(target)
    screen = restore_latest_onto(t, folder, 1)
    assert "(latest)" in screen.splitlines()[3] and "changes only" in screen.splitlines()[3]
    t.type("wrong password")
    screen = t.wait("Wrong password for image")
    t.type(PASSWORD)
    screen = t.wait("Type the target's name")
    assert "-> " in screen and "copy" in screen  # the plan: partitions old -> new
    t.type("target.img")  # not the name as the CLI asks for it: refused, asked again
    t.wait("nothing was written. Type it again")
    assert digest(target) == before
    t.keys("C-u")
    t.type(str(target))
    screen = t.wait("Log: ")
    assert "Done." in screen and "restored onto" in screen
    assert digest(target) == digest(src)  # bit for bit the disk as the incremental saw it
    logs = sorted(folder.glob("rescue-guide-*.log"))
    assert [p.name.rsplit("-", 1)[1] for p in (logs[0], logs[-1])] == ["backup.log", "restore.log"]
    assert "ended: exit 0" in logs[-1].read_text()
    # the refused incremental
    assert "error (exit 30): Wrong password" in "".join(p.read_text() for p in logs)

    assert leave(t, SHELL) == 64


def test_refusals_and_wrong_password_given_up(term: list[Terminal], tmp_path: Path) -> None:
    src = small_disk(tmp_path / "src.img")
    tiny = blank(tmp_path / "tiny.img", 16 * MiB)
    folder = tmp_path / "backups"
    t = start(term, tmp_path, "refusals", [src, tiny], "--logs", str(tmp_path))
    assert "Done." in back_up(t, folder)
    home(t)
    src_digest, tiny_digest = digest(src), digest(tiny)

    # a wrong password is asked again; Esc gives up, nothing written
    restore_latest_onto(t, folder, 1)
    t.type("not it")
    t.wait("Wrong password for image")
    t.keys("Escape")
    t.wait("No password given: nothing was written.")
    home(t)

    # a target too small: the engine's refusal, exit 40, nothing written
    restore_latest_onto(t, folder, 1)
    t.type(PASSWORD)
    screen = t.wait("This cannot be done:")
    assert "(exit code 40)" in screen and "Nothing was written." in screen and "tiny.img" in screen
    home(t)

    # clone a disk onto itself: the engine says it is the source
    choose(t, CLONE)
    t.wait("Which disk should be copied?")
    t.keys("Enter")
    t.wait("onto which disk?")
    t.keys("Enter")
    screen = t.wait("This cannot be done:")
    assert "it is source" in flat(screen) and "(exit code 40)" in screen
    assert digest(src) == src_digest and digest(tiny) == tiny_digest
    assert leave(t, POWER_OFF) == 65


def test_clone_onto_a_blank_disk(term: list[Terminal], tmp_path: Path) -> None:
    src = small_disk(tmp_path / "src.img")
    new = blank(tmp_path / "new.img", src.stat().st_size)
    t = start(term, tmp_path, "clone", [src, new], "--logs", str(tmp_path))
    choose(t, CLONE)
    t.wait("Which disk should be copied?")
    t.keys("Enter")
    t.wait("onto which disk?")
    choose(t, 1)
    screen = t.wait("Type the target's name")
    assert "ALL DATA ON" in screen and "copy" in screen
    t.type(str(new))
    screen = t.wait("Log: ")
    assert "Done." in screen and "read back and checked" in flat(screen), screen
    assert digest(new) == digest(src)
    assert [p.name.rsplit("-", 1)[1] for p in tmp_path.glob("rescue-guide-*.log")] == ["clone.log"]  # --logs
    assert leave(t, SHELL) == 64


def test_cancel_backup_keeps_earlier_images(term: list[Terminal], tmp_path: Path) -> None:
    src = small_disk(tmp_path / "src.img")
    slow_to_compress(src)  # a backup long enough to be cancelled
    folder = tmp_path / "backups"
    t = start(term, tmp_path, "cancel", [src])
    assert "Done." in back_up(t, folder, encrypt=False)
    home(t)
    earlier = {p.name: digest(p) for p in folder.iterdir() if not p.name.endswith(".log")}

    back_up(t, folder, encrypt=False, level=2, full_again=True)  # full again, "Smallest: much slower"
    t.keys("Escape")
    t.wait("Stop now?")
    t.keys("Down", "Enter")
    screen = t.wait("Log: ")
    assert "Stopped." in screen and "(exit code 130)" in screen
    now = {p.name: digest(p) for p in folder.iterdir() if not p.name.endswith(".log")}
    assert now == earlier  # the earlier image untouched, nothing of the stopped one left
    assert run_rescue("verify", str(folder)).returncode == 0
    assert leave(t, SHELL) == 64


@pytest.mark.root
def test_windows_restored_onto_smaller_disk_file_by_file(term: list[Terminal], tmp_path: Path) -> None:
    """A Windows 7 disk (factory) backed up, then restored through the guide onto a 0.6x blank disk: the
    plan says the Windows partition shrinks, and every file reads back the same through ntfs-3g."""
    need_root_tools("ntfs-3g", "ntfsresize", "fusermount3")
    info = clean_source("mbr-small", tmp_path)
    target = new_disk(tmp_path / "small.img", int(info.size * 0.6))
    folder = tmp_path / "backups"
    t = start(term, tmp_path, "restore-smaller", [info.path, target])
    assert "Done." in back_up(t, folder, encrypt=False)
    home(t)
    restore_latest_onto(t, folder, 1, encrypted=False)
    screen = t.screens[-1]
    assert "windows" in screen and "shrink" in screen
    t.type(str(target))
    screen = t.wait("Log: ", timeout=120)
    assert "Done." in screen and "restored onto" in screen, screen
    check_disk(target, "mbr")
    assert files(target) == files(info.path)
    assert leave(t, SHELL) == 64


@pytest.mark.root
def test_repair_windows_startup(term: list[Terminal], tmp_path: Path) -> None:
    """A Windows 7 disk whose MBR signature changed (as when a disk is replaced), so its BCD and drive
    letters point nowhere: the guide shows what the repair would change, changes nothing until the
    disk's name is typed, then repairs it."""
    need_root_tools("ntfs-3g")
    info = disk_copy("mbr-small", tmp_path / "win.img", size=700 * MiB, hiberfil_magic=b"wake")
    clean_system_hive(info.path, info.part("windows"))
    with open(info.path, "r+b") as f:
        f.seek(MBR_SIGNATURE)
        f.write(b"\x5a\xa5\x12\x34")
    assert not show_disk(str(info.path)).all_resolve
    before = digest(info.path)
    t = start(term, tmp_path, "repair", [info.path], "--logs", str(tmp_path))
    choose(t, REPAIR)
    t.wait("Which disk holds the Windows that does not start?")
    t.keys("Enter")
    screen = t.wait("The repair would change:")
    assert re.search(r"\d+ in the BCD store, \d+ in the drive letters", flat(screen)), screen
    t.wait("Type the target's name")
    t.keys("Escape")
    t.wait("Which disk holds the Windows")
    assert digest(info.path) == before  # the check and a cancelled confirmation wrote nothing
    t.keys("Enter")
    t.wait("Type the target's name")
    t.type(str(info.path))
    screen = t.wait("Log: ")
    assert "Done." in screen and "repaired" in flat(screen), screen
    assert show_disk(str(info.path)).all_resolve
    logs = "".join(p.read_text() for p in tmp_path.glob("rescue-guide-*-repair.log"))  # --logs; 1 or 2 files
    assert "changed \\DosDevices\\C:" in logs  # each change, in full, in the log
    assert leave(t, POWER_OFF) == 65


@pytest.mark.root
def test_take_files_out_of_a_backup(term: list[Terminal], tmp_path: Path) -> None:
    """A folder picked by browsing an encrypted backup (a wrong password asked again first), copied into
    a folder: the same files, byte for byte, as the disk holds; the browsing mount is gone before."""
    need_root_tools("ntfs-3g", "fusermount3")
    info = disk_copy("mbr-small", tmp_path / "win.img", size=700 * MiB, hiberfil_magic=b"wake")
    folder, out = tmp_path / "backups", tmp_path / "out"
    t = start(term, tmp_path, "files", [info.path])
    assert "Done." in back_up(t, folder)
    home(t)
    choose(t, FILES)
    t.wait("Where is the backup?")
    t.type(str(folder))
    t.wait("Which restore point?")
    t.keys("Enter")
    t.wait("This backup is encrypted: type its password.")
    t.type("not it")
    t.wait("Wrong password for image")  # asked again, nothing mounted
    t.type(PASSWORD)
    choose_line(t, t.wait("Which partition?"), "(windows)")
    choose_line(t, t.wait(": /"), "Users/")
    choose_line(t, t.wait(": /Users"), "Anna/")
    choose_line(t, t.wait(": /Users/Anna"), "Documents/")
    t.wait(": /Users/Anna/Documents")
    t.keys("Enter")  # [Take out this folder]
    t.wait("Copy into which folder?")
    browsing = ("/run/rescue/guide-browse-", "/tmp/guide-browse")
    assert not [m for m in mounts() if m.mount_point.startswith(browsing)]
    t.type(str(out))
    screen = t.wait("Log: ", timeout=120)
    assert "Done." in screen and "copied into" in flat(screen), screen
    windows = partition_hashes(info.path)[info.part("windows").number]
    expected = {k.removeprefix("Users/Anna/"): v for k, v in windows.items()
                if k.startswith("Users/Anna/Documents") and ":" not in k}
    got = {k: v for k, v in file_hashes(out).items() if ":" not in k}
    assert got == expected and len(got) > 10
    assert leave(t, SHELL) == 64


@pytest.mark.root
def test_backup_onto_a_mounted_ntfs_disk(term: list[Terminal], tmp_path: Path) -> None:
    """The backup folder chosen from the mounted disks (an NTFS backup disk through ntfs-3g, shown with
    its free space), not typed: the guide proposes a folder on it, and the backup lands there."""
    need_root_tools("mkntfs", "ntfs-3g", "umount")
    src = small_disk(tmp_path / "src.img")
    stick, mnt = blank(tmp_path / "stick.img", 128 * MiB), tmp_path / "stick"
    subprocess.run(["mkntfs", "-F", "-Q", "-q", "-L", "STICK", str(stick)], check=True, capture_output=True)
    mnt.mkdir()
    with loop(stick) as dev:  # on a block device, as a real disk: ntfs-3g mounts it as "fuseblk"
        subprocess.run(["ntfs-3g", dev, str(mnt)], check=True)
        try:
            backup_onto_mounted_disk(term, tmp_path, src, mnt, dev)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)


def backup_onto_mounted_disk(term: list[Terminal], tmp_path: Path, src: Path, mnt: Path, dev: str) -> None:
    """Through the guide: the backup folder chosen on the disk mounted at ``mnt`` (from ``dev``)."""
    t = start(term, tmp_path, "ntfs-backup-disk", [src])
    choose(t, BACKUP)
    t.wait("Which disk do you want to back up?")
    t.keys("Enter")
    screen = t.wait("Mounted disks that can hold one")
    assert f"{mnt} (ntfs on {dev}, " in flat(screen) and " free)" in flat(screen)
    choose_line(t, screen, str(mnt))  # a long path puts "(ntfs on ..." on the choice's next line
    t.wait(f"Folder: {mnt}/rescue-backups")
    t.keys("Enter")
    t.wait("Encrypt the backup?")
    choose(t, 1)
    t.wait("How much should the backup be compressed?")
    t.keys("Enter")
    t.wait("Start the backup")
    t.keys("Enter")
    assert "Done." in t.wait("Log: ")
    assert [i.complete for i in Repository(str(mnt / "rescue-backups")).list_images()] == [True]
    assert leave(t, SHELL) == 64


def test_keyboard_layout_screen_and_restart(term: list[Terminal], tmp_path: Path) -> None:
    """The main screen names the layout in use; its screen lists the layouts with the one in use chosen
    (or, where loadkeys is missing, says so); Esc goes back; Restart ends the guide with 66. Nothing is
    loaded: on a test machine that would change its own console's keyboard."""
    src = small_disk(tmp_path / "src.img")
    t = start(term, tmp_path, "keyboard", [src])
    screen = t.screen()
    assert "Keyboard layout: English (US) [us]" in screen and "Restart" in screen
    choose(t, KEYBOARD)
    screen = t.wait("keyboard layout")
    if "cannot be changed here" in screen:
        assert "loadkeys is missing" in flat(screen)
    else:
        screen = t.wait("Which keyboard is this?")
        assert "> English (US) [us]" in screen and "German [de]" in screen
    t.keys("Escape")
    t.wait("What do you want to do?")
    choose(t, RESTART)
    assert t.exit_code() == 66
