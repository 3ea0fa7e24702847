"""md RAID on the rescue media, in QEMU with the media's own kernel (this machine's has no md).

In one boot: two blank disks become a RAID1 (mdadm, metadata 1.2, made for another machine's name), a
factory Windows 7 disk is written onto it with dd, the array is stopped and started again as the boot
starts arrays (rescue-raid: read-only), `rescue disks` lists it, it is backed up, a member disk is
refused as a restore target and as the target of a clone of the array, the image is restored onto a
blank disk and then onto the array itself (which the restore makes writable). On the host: the disks
JSON and text (the array one disk, its two members named as members), the refusals (exit 40, the
reason), the restored disk's files against the factory disk's, and the array's bytes on both members,
which hold the factory's files.

An Intel RST (IMSM) RAID1 in a second boot: its disks on a SCSI controller, as mdadm reads a disk's
serial number (the IMSM metadata names its members by serial); made with IMSM_NO_PLATFORM=1, since
QEMU has no Intel RST firmware, as rescue-raid sets it to find such disks anywhere. Started by
rescue-raid (the container and the volume, read-only), listed, a member refused, backed up and
restored onto the volume itself (made writable: mdmon keeps the metadata); the host finds the data
on both members.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_root_tools
from tests.factory import cached_disk_info, copy_disk
from tests.media.live import SUCCESS, built_live, direct_boot, raw_disk, read_log, virtio
from tests.media.test_boot import CONSOLE, files

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(2400)]
MiB = 1 << 20

# Disks in the VM: vda the log, vdb and vdc the members, vdd the factory disk, vde the backup disk
# (ext4, carrying this script and receiving what the run writes), vdf the blank target.
RUN = """\
set -e
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 --assume-clean \\
    --homehost=pc1 --name=data /dev/vdb /dev/vdc
dd if=/dev/vdd of=/dev/md0 bs=4M conv=fsync 2>/dev/null
mdadm --stop /dev/md0
rescue-raid | tee /mnt/raid.txt
cat /proc/mdstat
MD=$(cut -d' ' -f1 /mnt/raid.txt)
SYS=/sys/block/${MD#/dev/}/md
echo "$MD" > /mnt/array
cat $SYS/array_state > /mnt/state-assembled
cat $SYS/dev-vdb/offset > /mnt/offset-vdb
cat $SYS/dev-vdc/offset > /mnt/offset-vdc
rescue disks --json > /mnt/disks.json
rescue disks > /mnt/disks.txt
rescue backup "$MD" /mnt/bk --json > /mnt/backup.json
rc=0
rescue restore /mnt/bk /dev/vdb --yes --json > /mnt/member.json 2> /mnt/member.err || rc=$?
echo $rc > /mnt/member.rc
rc=0
rescue clone "$MD" /dev/vdb --yes > /mnt/clone.txt 2>&1 || rc=$?
echo $rc > /mnt/clone.rc
rescue restore /mnt/bk /dev/vdf --yes --json > /mnt/restore.json
rescue restore /mnt/bk "$MD" --yes --json > /mnt/restore-array.json
cat $SYS/array_state > /mnt/state-after
mdadm --stop "$MD"
# a member gone (a dead disk): the array is started all the same, degraded
truncate -s 32M /tmp/a /tmp/b
A=/dev/loop6 B=/dev/loop7
losetup "$A" /tmp/a
losetup "$B" /tmp/b
mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --assume-clean "$A" "$B"
mdadm --stop /dev/md1
losetup -d "$B"
echo "$A" > /mnt/degraded-member
rescue-raid > /mnt/degraded.txt
rescue disks --json > /mnt/degraded.json
mdadm --stop --scan
sync
"""


def ext4_file(disk: Path, name: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat /{name}", str(disk)], capture_output=True, text=True,
                          check=True).stdout


def result(text: str) -> dict[str, Any]:
    """A `rescue restore --json` answer: the confirmation's "OK" line, then the JSON object."""
    obj: dict[str, Any] = json.loads(text[text.index("{"):])
    return obj


def test_raid1_assembled_read_only_listed_backed_up_and_restored(tmp_path: Path) -> None:
    need_root_tools("qemu-system-x86_64", "mke2fs", "debugfs", "ntfs-3g", "sfdisk")
    built = built_live()
    # the cached disk of the other boot tests
    info = cached_disk_info("mbr-small", size=700 * MiB, hiberfil_magic=b"wake")
    factory = copy_disk(info.path, tmp_path / "win7.img")
    members = [raw_disk(tmp_path / f"member{i}.img", 800 * MiB) for i in (1, 2)]
    target = raw_disk(tmp_path / "target.img", 800 * MiB)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "run.sh").write_text(RUN)
    backup = raw_disk(tmp_path / "backup.img", 1024 * MiB)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(staging), str(backup)], check=True)
    log = raw_disk(tmp_path / "log.img", MiB)

    r = direct_boot(built, [virtio(log), *[virtio(m) for m in members], virtio(factory, readonly=True),
                            virtio(backup), virtio(target)],
                    f'{CONSOLE} rescue.log=/dev/vda rescue.run="mount /dev/vde /mnt && sh /mnt/run.sh"',
                    timeout=900)
    text = read_log(log)
    assert r.exit_code == SUCCESS, f"exit {r.exit_code}\n{text or r.serial[-3000:]}"

    # started as the boot starts arrays: read-only, although made for another machine ("pc1")
    array = ext4_file(backup, "array").strip()
    assert array.startswith("/dev/md"), array
    assert ext4_file(backup, "state-assembled").strip() == "readonly"
    disks = {d["name"]: d for d in json.loads(ext4_file(backup, "disks.json"))}
    arrays = [d for d in disks.values() if d["raid"]]
    assert [d["name"] for d in arrays] == [array], disks.keys()
    md = disks[array]
    assert md["bus"] == "md" and md["read_only"]
    assert md["raid"]["level"] == "raid1" and md["raid"]["state"] == "readonly"
    assert md["raid"]["members"] == ["/dev/vdb", "/dev/vdc"] and md["raid"]["degraded"] == 0
    assert md["raid"]["metadata"] == "1.2"
    assert md["table"] == "mbr" and [p["fs"] for p in md["partitions"]] == ["ntfs", "ntfs"]
    assert md["description"].startswith("RAID array (raid1, 2 of 2 disks, readonly)")
    for m in ("/dev/vdb", "/dev/vdc"):
        assert disks[m]["member_of"] == array and not disks[m]["raid"]
        assert any(f"member of RAID array {array}" in b for b in disks[m]["busy"]), disks[m]["busy"]
    assert not disks["/dev/vdf"]["member_of"] and disks["/dev/vdf"]["busy"] == []
    shown = ext4_file(backup, "disks.txt")
    assert f"{array}  RAID array (raid1, 2 of 2 disks, readonly)" in shown, shown
    assert "metadata 1.2; members: /dev/vdb, /dev/vdc" in shown, shown
    assert f"in use: /dev/vdb is a member of RAID array {array}" in shown, shown

    # a member is no target: refused before anything is written, naming the array
    assert ext4_file(backup, "member.rc").strip() == "40"
    refused = json.loads(ext4_file(backup, "member.json"))
    assert refused["exit_code"] == 40
    assert f"member of RAID array {array}" in refused["error"] and "corrupt the array" in refused["error"]

    # a clone of the array onto its own member: the array is stored on the member
    assert ext4_file(backup, "clone.rc").strip() == "40"
    assert f"source {array} is stored on it (/dev/vdb is the same device)" in ext4_file(backup, "clone.txt")

    backed = json.loads(ext4_file(backup, "backup.json"))
    assert backed["unreadable"] == [] and backed["warnings"] == []
    assert backed["data_bytes"] > 40 * MiB

    onto_disk = result(ext4_file(backup, "restore.json"))["result"]
    assert onto_disk["verified_bytes"] == onto_disk["written_bytes"] > 40 * MiB
    assert onto_disk["boot_problems"] == []
    onto_array = result(ext4_file(backup, "restore-array.json"))["result"]
    assert onto_array["verified_bytes"] == onto_array["written_bytes"] > 40 * MiB
    assert any(a.startswith(f"RAID array {array} made writable") for a in onto_array["actions"]), onto_array
    assert ext4_file(backup, "state-after").strip() in ("clean", "active")

    # the array with a member gone: started (read-only, degraded), its one member named (the first
    # array, stopped before, is started again beside it, whole)
    started = {ln.split()[0]: ln.split()[1:3] for ln in ext4_file(backup, "degraded.txt").splitlines()}
    listed = json.loads(ext4_file(backup, "degraded.json"))
    degraded = [d for d in listed if d["raid"] and d["raid"]["degraded"]]
    assert len(degraded) == 1 and degraded[0]["raid"]["degraded"] == 1, degraded
    assert started[degraded[0]["name"]] == ["raid1", "readonly"], started
    assert degraded[0]["raid"]["members"] == [ext4_file(backup, "degraded-member").strip()]
    assert degraded[0]["description"].startswith("RAID array (raid1, 1 of 2 disks, readonly)"), degraded

    expected = files(factory)
    assert files(target) == expected
    # the array as each member holds it (metadata 1.2: the data starts at the member's data offset)
    size = md["size"]
    digests = []
    for i, m in enumerate(members):
        offset = int(ext4_file(backup, f"offset-vd{'bc'[i]}")) * 512
        h = hashlib.sha256()
        with m.open("rb") as src, (tmp_path / "array.img").open("wb") as dst:
            src.seek(offset)
            done = 0
            while done < size:
                chunk = src.read(min(8 * MiB, size - done))
                assert chunk, "member shorter than the array"
                h.update(chunk)
                dst.write(chunk)
                done += len(chunk)
        digests.append(h.hexdigest())
    assert digests[0] == digests[1], "the two mirrors differ"
    assert files(tmp_path / "array.img") == expected
    print(f"\nRAID1 boot: {r.seconds:.0f} s (build {built.build_seconds:.0f} s)")


IMSM_RUN = """\
set -e
IMSM_NO_PLATFORM=1 mdadm --create /dev/md/imsm --run --metadata=imsm --raid-devices=2 /dev/sda /dev/sdb
IMSM_NO_PLATFORM=1 mdadm --create /dev/md/vol0 --run --assume-clean --level=1 --raid-devices=2 /dev/md/imsm
dd if=/dev/urandom of=/dev/md/vol0 bs=1M count=4 conv=fsync 2>/dev/null
head -c 4194304 /dev/md/vol0 | md5sum | cut -d' ' -f1 > /mnt/written
mdadm --stop --scan
rescue-raid | tee /mnt/raid.txt
MD=$(awk '$2 == "raid1" {print $1}' /mnt/raid.txt)
echo "$MD" > /mnt/array
cat /sys/block/${MD#/dev/}/md/array_state > /mnt/state-assembled
rescue disks --json > /mnt/disks.json
rescue backup "$MD" /mnt/bk --json > /mnt/backup.json
rc=0
rescue restore /mnt/bk /dev/sda --yes --json > /mnt/member.json 2>/dev/null || rc=$?
echo $rc > /mnt/member.rc
rescue restore /mnt/bk "$MD" --yes --json > /mnt/restore-array.json
cat /sys/block/${MD#/dev/}/md/array_state > /mnt/state-after
ps | grep -c '[m]dmon' > /mnt/mdmon
head -c 4194304 "$MD" | md5sum | cut -d' ' -f1 > /mnt/restored
mdadm --stop --scan
sync
"""


def test_intel_rst_volume_assembled_read_only_and_restored_onto(tmp_path: Path) -> None:
    need_root_tools("qemu-system-x86_64", "mke2fs", "debugfs")
    built = built_live()
    members = [raw_disk(tmp_path / f"member{i}.img", 300 * MiB) for i in (1, 2)]
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "run.sh").write_text(IMSM_RUN)
    backup = raw_disk(tmp_path / "backup.img", 256 * MiB)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(staging), str(backup)], check=True)
    log = raw_disk(tmp_path / "log.img", MiB)
    scsi = ["-device", "virtio-scsi-pci,id=scsi"]
    for i, m in enumerate(members):  # sda, sdb: serial numbers through SCSI inquiry, as IMSM wants
        scsi += ["-drive", f"file={m},format=raw,if=none,id=m{i}",
                 "-device", f"scsi-hd,drive=m{i},serial=RST{i}"]
    r = direct_boot(built, [virtio(log), virtio(backup), scsi],
                    f'{CONSOLE} rescue.log=/dev/vda rescue.run="mount /dev/vdb /mnt && sh /mnt/run.sh"',
                    timeout=600)
    text = read_log(log)
    assert r.exit_code == SUCCESS, f"exit {r.exit_code}\n{text or r.serial[-3000:]}"

    array = ext4_file(backup, "array").strip()
    assert array.startswith("/dev/md"), ext4_file(backup, "raid.txt")
    assert ext4_file(backup, "state-assembled").strip() == "readonly"
    disks = {d["name"]: d for d in json.loads(ext4_file(backup, "disks.json"))}
    assert [d["name"] for d in disks.values() if d["raid"]] == [array]  # the container is no disk
    raid = disks[array]["raid"]
    assert (raid["level"], raid["metadata"], raid["members"]) == ("raid1", "imsm", ["/dev/sda", "/dev/sdb"])
    for m in ("/dev/sda", "/dev/sdb"):
        assert disks[m]["member_of"] == array, disks[m]  # the volume, not its container

    assert ext4_file(backup, "member.rc").strip() == "40"
    assert f"member of RAID array {array}" in json.loads(ext4_file(backup, "member.json"))["error"]
    restored = result(ext4_file(backup, "restore-array.json"))["result"]
    assert any(a.startswith(f"RAID array {array} made writable") for a in restored["actions"]), restored
    assert ext4_file(backup, "state-after").strip() in ("clean", "active")
    assert int(ext4_file(backup, "mdmon")) >= 1, "no mdmon for the writable RST volume"
    written = ext4_file(backup, "written").strip()
    assert ext4_file(backup, "restored").strip() == written
    # IMSM keeps its metadata at the end of each disk: the volume's data starts at the members' first byte
    for m in members:
        with m.open("rb") as f:
            assert hashlib.md5(f.read(4 * MiB)).hexdigest() == written, m
    print(f"\nIntel RST boot: {r.seconds:.0f} s")
