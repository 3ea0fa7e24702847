"""Issue 16 on the rescue media: the network at boot, `rescue net`, and backup folders on SMB and NFS.

One VM (direct kernel boot, TCG) with two network cards on a bridge inside a network namespace the test
creates (tests/media/netlab.py): a virtio card that gets its address from dnsmasq's DHCP there, and an
e1000 card that `rescue.net=MAC,ADDR/PREFIX,,DNS` gives a static address. This machine's kernel has
neither a cifs nor an NFS client, so the SMB and NFS folders are proven inside the VM, whose Debian
kernel has them: Samba's smbd (a user with a password) and nfs-ganesha listen on the bridge's address.
In one boot, an unattended script shows `rescue net --json`, then for each of smb:// and nfs:// makes an
encrypted split backup of a factory disk, lists, verifies and restores it onto a blank disk, while every
process's command line is recorded; the SMB image is browsed with `rescue mount` (a file's digest)
and `rescue umount` unmounts the share; a wrong SMB password is refused with exit 12; a backup goes onto
an export offered over NFS v3 only (the client falls back to v3); an SFTP backup (sshd there too) is
made and listed. The test kills smbd in the middle of a second SMB backup
(watching the serial console and the share), starts it again once that backup has failed, and the
script makes a third one; a backup into a 6 MiB share (SMB) and export (NFS) that it fills is exit 10
with nothing left complete; smbd is killed again while a restore reads (what smbd sends limited to
1 MB/s by nftables meanwhile): exit 11, the target without a partition table, and a rerun restores it. The host then compares the restored disks
file by file with the source, verifies the first image on the share, and reads the folders and logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_root_tools
from tests.factory import cached_disk_info, copy_disk
from tests.images import run_rescue
from tests.media.live import SUCCESS, Console, built_live, raw_disk, read_log, virtio
from tests.media.netlab import ADDRESS, NET, Ganesha, Lab, Smbd, Sshd
from tests.ntfs3g import partition_hashes

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]
MiB = 1 << 20
STATIC_MAC, STATIC_ADDRESS, STATIC_DNS = "52:54:00:16:00:03", f"{NET}.9", f"{NET}.53"
IMAGE_PASSWORD = "network folders in a VM"
SAMPLE = "/mnt/img/p2/Windows/System32/config/SOFTWARE"  # a file of the factory disk's Windows
VOLATILE = {"pagefile.sys", "hiberfil.sys"}  # restored as zeros by design


def files(disk: Path) -> dict[int, dict[str, str]]:
    return {n: {k: v for k, v in h.items() if k not in VOLATILE} for n, h in partition_hashes(disk).items()}


def folder_script(url: str, cred: str, target: str, tag: str) -> list[str]:
    """Backup (encrypted, split), list, verify and restore through ``url``; every process's command line
    is recorded meanwhile (as `ps` shows them: /proc/PID/cmdline)."""
    opts = f"--credentials-file {cred}" if cred else ""
    return [
        f"echo '== {tag} backup'",
        f"( while [ ! -e /run/{tag}.done ]; do for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; "
        f"done >> /run/{tag}.ps 2>/dev/null; sleep 0.2; done ) &",
        f"rescue backup /dev/vdc {url} {opts} --split 8M --json; echo \"exit $?\"",
        f"touch /run/{tag}.done; wait",
        f"echo '== {tag} list'", f"rescue list {url} {opts} --json; echo \"exit $?\"",
        f"echo '== {tag} verify'", f"rescue verify {url} {opts}; echo \"exit $?\"",
        f"echo '== {tag} restore'", f"rescue restore {url} {target} {opts} --yes --json; echo \"exit $?\"",
        f"echo '== {tag} ps'", f"sort -u /run/{tag}.ps",
    ]


def section(log: str, name: str) -> str:
    """What the run script printed between its ``== name`` marker and the next marker."""
    m = re.search(rf"^== {re.escape(name)}\n(.*?)(?=^== |^rescue-run: exit)", log, re.DOTALL | re.MULTILINE)
    assert m, f"no section {name!r} in the run log:\n{log}"
    return m.group(1)


def json_of(text: str) -> Any:
    start = min(i for i in (text.find("{"), text.find("[")) if i >= 0)
    return json.JSONDecoder().raw_decode(text[start:])[0]


def wait_for_new_file(folder: Path, old: set[str], size: int) -> None:
    """Until a file not in ``old`` holds ``size`` bytes on the server (a backup well under way)."""
    deadline = time.monotonic() + 600
    while True:
        for p in folder.iterdir():
            try:
                if p.name not in old and p.stat().st_size >= size:
                    return
            except FileNotFoundError:  # renamed meanwhile (a finished volume)
                continue
        assert time.monotonic() < deadline, f"no new file of {size} bytes in {folder}"
        time.sleep(0.2)


def wait_for_writing(disk: Path) -> None:
    """Until a restore onto ``disk`` (a VM's disk file) is writing: the first thing it does is take
    away the partition table's signature, so that a restore that fails leaves no table behind."""
    deadline = time.monotonic() + 600
    while True:
        with disk.open("rb") as f:
            f.seek(510)
            if f.read(2) != b"\x55\xaa":
                return
        assert time.monotonic() < deadline, f"the restore onto {disk} never started writing"
        time.sleep(0.05)


def test_network_folders_in_vm(tmp_path: Path) -> None:
    need_root_tools("qemu-system-x86_64", "dnsmasq", "ip", "nsenter", "smbd", "smbpasswd", "ganesha.nfsd",
                    "rpcbind", "ntfs-3g", "mke2fs", "nft")
    built = built_live()
    # 16 MB of files: two volumes of 8 MiB; shut down normally (no warning about hibernation)
    info = cached_disk_info("mbr-tiny", data_mb=16, hiberfil_magic=b"wake")
    src = copy_disk(info.path, tmp_path / "win7.img")
    smb_target = raw_disk(tmp_path / "smb-target.img", info.size)
    nfs_target = raw_disk(tmp_path / "nfs-target.img", info.size)
    lab = Lab(tmp_path / "lab")
    try:
        subprocess.run(["ip", "-n", lab.name, "tuntap", "add", "dev", "tap1", "mode", "tap"], check=True)
        subprocess.run(["ip", "-n", lab.name, "link", "set", "tap1", "master", "br0", "up"], check=True)
        dhcp_log = lab.dnsmasq()
        smbd = Smbd(lab, tmp_path / "smb")
        ganesha = Ganesha(lab, tmp_path / "nfs")
        sshd = Sshd(lab, tmp_path / "sshd")
        sftp_url = f"sftp://root@{ADDRESS}:{Sshd.PORT}{sshd.root}/pc1"
        sftp_opts = f"--credentials-file /run/sftp.cred --accept-host-key {sshd.fingerprint}"
        smb_url = f"smb://{Smbd.USER}@{ADDRESS}/backups/pc1"
        smb_full = f"smb://{Smbd.USER}@{ADDRESS}/backups/full/pc"
        script = [
            "umask 077",  # the credentials files below are the user's own
            f"printf 'password = %s\\n' '{smbd.password}' > /run/smb.cred",
            "printf 'password = wrong-password\\n' > /run/bad.cred",
            f"export RESCUE_PASSWORD='{IMAGE_PASSWORD}'",
            "echo '== state'", "head /run/rescue-net/*",
            "echo '== addresses'", "ip addr",
            "echo '== routes'", "ip route",
            "echo '== resolv'", "cat /etc/resolv.conf",
            "echo '== ping'", f"ping -c 1 {ADDRESS}",
            "echo '== net'", "rescue net --json",
            *folder_script(smb_url, "/run/smb.cred", "/dev/vdd", "smb"),
            # an image browsed on the share: the share stays mounted until rescue umount
            "echo '== smb mount'", "mkdir -p /mnt/img",
            f"rescue mount {smb_url} /mnt/img --credentials-file /run/smb.cred && sha256sum {SAMPLE}; "
            "rescue umount /mnt/img; echo \"exit $?\"", "grep -c ' cifs ' /proc/mounts",
            # the server is killed in the middle of this one (below), then started again
            "echo '== smb killed'", f"rescue backup /dev/vdc {smb_url} --credentials-file /run/smb.cred "
            "--split 8M; echo \"exit $?\"",
            "echo '== smb again'",
            f"i=0; until rescue list {smb_url} --credentials-file /run/smb.cred >/dev/null 2>&1 || "
            "[ $i -ge 60 ]; do sleep 2; i=$((i + 1)); done",
            f"rescue backup /dev/vdc {smb_url} --credentials-file /run/smb.cred --split 8M --json; "
            "echo \"exit $?\"",
            "echo '== smb after'", f"rescue list {smb_url} --credentials-file /run/smb.cred --json",
            # a share that fills up (share/full is a 6 MiB filesystem): one line, exit 10, nothing complete
            "echo '== smb full'", f"rescue backup /dev/vdc {smb_full} --credentials-file /run/smb.cred "
            "--split 8M; echo \"exit $?\"",
            "echo '== smb full list'", f"rescue list {smb_full} --credentials-file /run/smb.cred --json",
            # smbd is killed in the middle of this restore (below; the network slowed meanwhile), then
            # started again: the target is left without a partition table, and a rerun restores it
            "echo '== smb restore killed'", "sleep 2",
            f"rescue restore {smb_url} /dev/vdd --credentials-file /run/smb.cred --yes; echo \"exit $?\"",
            "echo '== smb restore signature'", "dd if=/dev/vdd bs=1 skip=510 count=2 2>/dev/null | od -An -tx1",
            "echo '== smb restore again'",
            f"i=0; until rescue list {smb_url} --credentials-file /run/smb.cred >/dev/null 2>&1 || "
            "[ $i -ge 60 ]; do sleep 2; i=$((i + 1)); done",
            f"rescue restore {smb_url} /dev/vdd --credentials-file /run/smb.cred --yes --json; echo \"exit $?\"",
            *folder_script(f"nfs://{ADDRESS}/export/pc1", "", "/dev/vde", "nfs"),
            # an export the server offers over NFS v3 only: the client falls back to it
            "echo '== nfs3 backup'", f"rescue backup /dev/vdc nfs://{ADDRESS}/export3/pc1 --split 8M --json; "
            "echo \"exit $?\"",
            "echo '== nfs full'", f"rescue backup /dev/vdc nfs://{ADDRESS}/full/pc --split 8M; echo \"exit $?\"",
            "echo '== nfs full list'", f"rescue list nfs://{ADDRESS}/full/pc --json",
            # sshfs, ssh and its host key check on the media (restore and the rest: tests/remote)
            "echo '== sftp backup'", "printf 'identity = /run/s/user_key\\n' > /run/sftp.cred",
            f"rescue backup /dev/vdc {sftp_url} {sftp_opts} --split 8M --json; echo \"exit $?\"",
            "echo '== sftp list'", f"rescue list {sftp_url} {sftp_opts} --json; echo \"exit $?\"",
            "echo '== kernel'", "dmesg | grep -iE 'cifs|smb|nfs' | tail -n 20",
            "echo '== wrong password'",
            f"rescue list {smb_url} --credentials-file /run/bad.cred; echo \"exit $?\"",
            "echo '== end'",
        ]
        (tmp_path / "scripts").mkdir()
        (tmp_path / "scripts" / "run.sh").write_text("\n".join(script) + "\n")
        shutil.copy(sshd.work / "user_key", tmp_path / "scripts" / "user_key")
        os.chmod(tmp_path / "scripts" / "user_key", 0o600)  # ssh refuses a key others may read
        log_disk = raw_disk(tmp_path / "log.img", 16 * MiB)
        # the script travels on a small ext4 disk: rescue.run is one line of the kernel command line
        scripts = raw_disk(tmp_path / "scripts.img", 8 * MiB)
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tmp_path / "scripts"), str(scripts)],
                       check=True)
        nics = [*lab.qemu_nic(), "-netdev", "tap,id=n1,ifname=tap1,script=no,downscript=no",
                "-device", f"e1000,netdev=n1,mac={STATIC_MAC}"]
        disks = [virtio(log_disk), virtio(scripts, readonly=True), virtio(src, readonly=True),
                 virtio(smb_target), virtio(nfs_target), nics]
        append = ("console=ttyS0,115200n8 rescue.debugexit=1 rescue.log=/dev/vda "
                  f"rescue.net={STATIC_MAC},{STATIC_ADDRESS}/24,,{STATIC_DNS} "
                  'rescue.run="mkdir -p /run/s && mount -o ro /dev/vdb /run/s && sh /run/s/run.sh"')
        args = ["-kernel", str(built.kernel), "-initrd", str(built.initrd), "-append", append,
                *[a for d in disks for a in d]]
        # the run's output reaches the serial console too (the init tees it there)
        vm = Console(args, tmp_path / "serial.txt", prefix=lab.prefix)
        try:
            vm.wait("== smb killed", timeout=900)
            first = set(p.name for p in (smbd.share / "pc1").iterdir())
            wait_for_new_file(smbd.share / "pc1", first, 2 * MiB)
            smbd.kill()
            vm.wait("\nexit ", timeout=600)  # that backup has ended
            smbd.start()
            # the restore: what smbd sends slowed to 1 MB/s (nftables drops the excess and TCP backs off;
            # this kernel has no traffic-shaping qdisc) so that the restore is still reading when smbd
            # is killed, once it has started writing the target
            vm.wait("== smb restore killed", timeout=900)
            nft = [*lab.prefix, "nft"]
            subprocess.run([*nft, "add table inet slow; add chain inet slow out "
                            "{ type filter hook output priority 0; }; "
                            "add rule inet slow out tcp sport 445 limit rate over 1 mbytes/second drop"], check=True)
            wait_for_writing(smb_target)
            smbd.kill()
            vm.wait("\nexit ", timeout=600)
            subprocess.run([*nft, "delete table inet slow"], check=True)
            smbd.start()
            code = vm.exit_code(timeout=900)
        finally:
            vm.close()
    finally:
        lab.close()
    log = read_log(log_disk)
    (tmp_path / "run.log").write_text(log)  # for people, after the run
    serial = vm.text()
    assert code == SUCCESS, f"exit {code}\n{log or serial[-3000:]}"
    assert smbd.password not in log and smbd.password not in serial

    # DHCP on the virtio card (the address dnsmasq handed out), the static address on the e1000 card
    leased = re.search(rf"DHCPACK\(br0\) ({re.escape(NET)}\.\d+) 52:54:00:16:00:02", dhcp_log.read_text())
    assert leased, dhcp_log.read_text()
    state = section(log, "state")
    assert f"bound {leased.group(1)}/24" in state and f"static {STATIC_ADDRESS}/24" in state, state
    addresses = section(log, "addresses")
    assert f"inet {leased.group(1)}/24" in addresses and f"inet {STATIC_ADDRESS}/24" in addresses, addresses
    assert f"default via {ADDRESS} dev eth0" in section(log, "routes")
    resolv = section(log, "resolv")
    assert f"nameserver {ADDRESS}" in resolv and f"nameserver {STATIC_DNS}" in resolv, resolv
    assert "1 packets received" in section(log, "ping")
    net = json_of(section(log, "net"))
    links = {link["name"]: link for link in net["links"]}
    assert links["eth0"]["driver"] == "virtio_net" and links["eth0"]["carrier"] is True
    assert links["eth0"]["configured"] == f"bound {leased.group(1)}/24"
    assert links["eth1"]["driver"] == "e1000" and links["eth1"]["bus"] == "pci"
    assert {"ipv4", STATIC_ADDRESS, 24} <= {v for a in links["eth1"]["addresses"] for v in a.values()}
    assert {"family": "ipv4", "gateway": ADDRESS, "link": "eth0"} in net["default_routes"]
    assert net["dns"] == [ADDRESS, STATIC_DNS]

    want = files(src)
    for tag, target, folder in (("smb", smb_target, smbd.share / "pc1"),
                                ("nfs", nfs_target, ganesha.export / "pc1")):
        backup = section(log, f"{tag} backup")
        assert backup.rstrip().endswith("exit 0"), backup
        made = json_of(backup)
        assert made["warnings"] == [] and len(made["volumes"]) >= 2, made
        listed = json_of(section(log, f"{tag} list"))
        assert [(i["id"], i["complete"], i["encrypted"]) for i in listed] == [(made["id"], True, True)]
        assert section(log, f"{tag} verify").rstrip().endswith("exit 0")
        restore = section(log, f"{tag} restore")
        assert restore.rstrip().endswith("exit 0"), restore
        # what the server holds: the image's volumes (split) and its manifest, nothing half-written
        names = {p.name for p in folder.iterdir()}
        assert {f"{made['id']}.manifest", *made["volumes"]} <= names, names
        assert files(target) == want, f"{tag}: the restored disk's files differ"
        with src.open("rb") as a, target.open("rb") as b:
            assert a.read(440) == b.read(440), f"{tag}: MBR boot code"
        cmdlines = section(log, f"{tag} ps")
        assert "rescue backup" in cmdlines, "the process list was not recorded during the backup"
        assert smbd.password not in cmdlines and IMAGE_PASSWORD not in cmdlines

    mounted = section(log, "smb mount")
    assert f"{want[2]['Windows/System32/config/SOFTWARE']}  {SAMPLE}" in mounted, mounted
    assert mounted.split()[-3:] == ["exit", "0", "0"], mounted  # umount worked; no cifs mount left

    nfs3 = section(log, "nfs3 backup")
    assert nfs3.rstrip().endswith("exit 0"), nfs3
    made = json_of(nfs3)
    on_server = {p.name for p in (ganesha.export3 / "pc1").iterdir()}
    assert {f"{made['id']}.manifest", *made["volumes"]} <= on_server, on_server
    check = run_rescue("list", str(ganesha.export3 / "pc1"), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)[0]["complete"] is True, check.stderr

    sftp = section(log, "sftp backup")
    assert sftp.rstrip().endswith("exit 0"), sftp
    made = json_of(sftp)
    listed = json_of(section(log, "sftp list"))
    assert [(i["id"], i["complete"]) for i in listed] == [(made["id"], True)], listed
    assert {f"{made['id']}.manifest", *made["volumes"]} <= {p.name for p in (sshd.root / "pc1").iterdir()}

    # smbd killed mid-backup: one line and exit 11; that image incomplete, the first one intact (checked
    # here, on the share), the next backup made once the server is back
    killed = section(log, "smb killed")
    assert killed.rstrip().endswith("exit 11"), killed
    error = [line for line in killed.splitlines() if line.strip() and not line.startswith("exit ")]
    assert len(error) == 1 and error[0].startswith("rescue: error: ") and "connection" in error[0], killed
    again = section(log, "smb again")
    assert again.rstrip().endswith("exit 0"), again
    third = json_of(again)["id"]
    first_id = json_of(section(log, "smb backup"))["id"]
    listed = json_of(section(log, "smb after"))
    assert [i["id"] for i in listed][0] == first_id and listed[-1]["id"] == third, listed
    assert [i["complete"] for i in listed] == [True, False, True], listed
    check = run_rescue("verify", str(smbd.share / "pc1"), "--image", first_id,
                       env={"RESCUE_PASSWORD": IMAGE_PASSWORD})
    assert check.returncode == 0, check.stderr

    # a full share: one line, exit 10, and no image left complete (the partial one removed)
    for tag in ("smb", "nfs"):
        full = section(log, f"{tag} full")
        assert full.rstrip().endswith("exit 10"), full
        error = [line for line in full.splitlines() if line.strip() and not line.startswith("exit ")]
        assert len(error) == 1 and "No space left in backup folder" in error[0], full
        assert all(not i["complete"] for i in json_of(section(log, f"{tag} full list"))), full

    # smbd killed mid-restore: one line, exit 11, the target without its partition table's signature;
    # the rerun restored it (its files were compared above)
    killed = section(log, "smb restore killed")  # (the plan is shown first: no --json)
    assert killed.rstrip().endswith("exit 11") and "Traceback" not in killed, killed
    error = [line for line in killed.splitlines() if line.startswith("rescue: error: ")]
    assert len(error) == 1 and "connection was lost" in error[0], killed
    assert section(log, "smb restore signature").split() == ["00", "00"], section(log, "smb restore signature")
    again = section(log, "smb restore again")
    assert again.rstrip().endswith("exit 0"), again

    wrong = section(log, "wrong password")
    assert wrong.rstrip().endswith("exit 12"), wrong
    assert "refused the credentials" in wrong and "wrong-password" not in wrong
