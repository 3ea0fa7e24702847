"""A network for a VM of the rescue media, inside a network namespace the test creates.

`Lab` is a fresh namespace holding a bridge with the address 10.16.0.1/24 and a tap device on it: QEMU
runs inside the namespace (``lab.prefix``) with its card on that tap, so everything the guest sends
stays in the namespace. dnsmasq there answers DHCP only (its DNS server is off: ``--port=0``), on the
bridge's address. `Smbd` (Samba), `Ganesha` (nfs-ganesha with its VFS backend: this machine's
kernel has no NFS server) and `Sshd` (OpenSSH, SFTP) listen only on 10.16.0.1; the SMB share's
folder ``full`` and the NFS export ``/full`` are small filesystems that a backup fills. Every server is
killed, the namespace removed and the small filesystems unmounted by `Lab.close`.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ADDRESS = "10.16.0.1"
NET = "10.16.0"
TAP = "tap0"
# The size of the servers' small filesystems: less than one backup of the test's disk.
FULL_MIB = 6


class Lab:
    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.name = f"rescue-vm{os.getpid()}-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/run/netns/{self.name}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mounts: list[Path] = []
        for cmd in (["link", "set", "lo", "up"], ["link", "add", "br0", "type", "bridge"],
                    ["tuntap", "add", "dev", TAP, "mode", "tap"], ["link", "set", TAP, "master", "br0"],
                    ["addr", "add", f"{ADDRESS}/24", "dev", "br0"], ["link", "set", "br0", "up"],
                    ["link", "set", TAP, "up"]):
            subprocess.run(["ip", "-n", self.name, *cmd], check=True)

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            p = subprocess.Popen([*self.prefix, *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
        self.procs.append(p)
        return p

    def wait_port(self, port: int, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        probe = [sys.executable, "-c",
                 f"import socket; socket.create_connection(('{ADDRESS}', {port}), 1).close()"]
        while subprocess.run([*self.prefix, *probe], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, f"{what} does not listen on {ADDRESS}:{port}"
            time.sleep(0.3)

    def dnsmasq(self) -> Path:
        """DHCP for the guest (10.16.0.100-150, router and DNS server 10.16.0.1); its log."""
        log = self.work / "dnsmasq.log"
        self.start(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0",
                    "--bind-interfaces", f"--listen-address={ADDRESS}", "--user=root",
                    f"--dhcp-range={NET}.100,{NET}.150,255.255.255.0,1h", "--dhcp-authoritative",
                    f"--dhcp-leasefile={self.work}/leases", f"--dhcp-option=option:router,{ADDRESS}",
                    f"--dhcp-option=option:dns-server,{ADDRESS}", "--log-dhcp", f"--log-facility={log}"],
                   self.work / "dnsmasq.out")
        return log

    def small_fs(self, path: Path, mib: int) -> Path:
        """A ``mib`` MiB ext4 mounted (through a loop device) at ``path``: a share that fills up."""
        path.mkdir(parents=True, exist_ok=True)
        img = self.work / f"small-{len(self.mounts)}.ext4"  # outside what the servers serve
        subprocess.run(["truncate", "-s", f"{mib}M", str(img)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(path)], check=True)
        self.mounts.append(path)
        return path

    def qemu_nic(self) -> list[str]:
        return ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:16:00:02"]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        for m in self.mounts:
            subprocess.run(["umount", "-l", str(m)], check=False)


class Smbd:
    """Samba's smbd on 10.16.0.1:445 with one share (``backups``) and one user with a password. The
    user exists only in Samba's own password database (tdbsam under ``work``), mapped to root."""

    USER = "tech"

    def __init__(self, lab: Lab, work: Path) -> None:
        self.work = work
        self.share = work / "share"
        for d in ("share", "private", "state", "cache", "lock", "run"):
            (work / d).mkdir(parents=True, exist_ok=True)
        self.password = "smb-" + secrets.token_hex(10)
        conf = work / "smb.conf"
        conf.write_text(
            "[global]\n"
            f"  interfaces = {ADDRESS}/24\n  bind interfaces only = yes\n  smb ports = 445\n"
            "  server role = standalone server\n  passdb backend = tdbsam\n  disable netbios = yes\n"
            f"  private dir = {work}/private\n  state directory = {work}/state\n"
            f"  cache directory = {work}/cache\n  lock directory = {work}/lock\n"
            f"  pid directory = {work}/run\n"
            f"  ncalrpc dir = {work}/run/ncalrpc\n  log file = {work}/smbd.log\n  log level = 1\n"
            "  server min protocol = SMB2_10\n  load printers = no\n  printing = bsd\n"
            "  printcap name = /dev/null\n"
            f"  username map = {work}/users.map\n  map to guest = never\n"
            "[backups]\n"
            f"  path = {self.share}\n  read only = no\n  valid users = root\n  force user = root\n")
        # the Samba user "tech" is the machine's root (smbpasswd needs a Unix account: root is one)
        (work / "users.map").write_text(f"root = {self.USER}\n")
        # share/full: a small filesystem, so that a backup into backups/full fills the share
        self.full = lab.small_fs(self.share / "full", FULL_MIB)
        self.lab, self.conf = lab, conf
        self.env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run(["smbpasswd", "-c", str(conf), "-s", "-a", "root"], input=f"{self.password}\n"
                       f"{self.password}\n", text=True, check=True, capture_output=True, env=self.env)
        self.start()

    def start(self) -> None:
        # --no-process-group: smbd and the process it forks per client stay in the group `kill` ends
        self.proc = self.lab.start(["smbd", "--foreground", "--no-process-group", "--debug-stdout",
                                    f"--configfile={self.conf}"], self.work / "smbd.out", self.env)
        self.lab.wait_port(445, "smbd")

    def kill(self) -> None:
        """SIGKILL smbd and every process it forked: the server is gone at once, mid-request."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Ganesha:
    """nfs-ganesha serving ``work``/export through its VFS backend as /export (NFS v3 and v4) and
    ``work``/export3 as /export3 (v3 only: a client must fall back to v3), on 10.16.0.1:2049."""

    MOUNT_PORT = 20048

    def __init__(self, lab: Lab, work: Path) -> None:
        self.work = work
        self.export, self.export3 = work / "export", work / "export3"
        self.export.mkdir(parents=True, exist_ok=True)
        self.export3.mkdir(exist_ok=True)
        # /full: a small filesystem (mounted before ganesha starts in a mount namespace of its own)
        self.full = lab.small_fs(work / "full", FULL_MIB)
        conf = work / "ganesha.conf"
        conf.write_text(
            "NFS_CORE_PARAM {\n"
            f"  Bind_addr = {ADDRESS};\n  NFS_Port = 2049;\n  MNT_Port = {self.MOUNT_PORT};\n"
            "  Protocols = 3, 4;\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n"
            # NFS v3 clients name the export by its pseudo path too, as v4 ones do (not by Path)
            "  Mount_Path_Pseudo = true;\n"
            "}\n"
            "NFSV4 {\n  Graceless = true;\n  Lease_Lifetime = 10;\n}\n"
            "NFS_KRB5 {\n  Active_krb5 = false;\n}\n"
            "EXPORT {\n  Export_Id = 1;\n"
            f"  Path = {self.export};\n  Pseudo = /export;\n  Access_Type = RW;\n  Squash = No_Root_Squash;\n"
            "  SecType = sys;\n  Protocols = 3, 4;\n  Transports = TCP;\n"
            "  FSAL {\n    Name = VFS;\n  }\n}\n"
            "EXPORT {\n  Export_Id = 2;\n"
            f"  Path = {self.export3};\n  Pseudo = /export3;\n"
            "  Access_Type = RW;\n  Squash = No_Root_Squash;\n"
            "  SecType = sys;\n  Protocols = 3;\n  Transports = TCP;\n"
            "  FSAL {\n    Name = VFS;\n  }\n}\n"
            "EXPORT {\n  Export_Id = 3;\n"
            f"  Path = {self.full};\n  Pseudo = /full;\n  Access_Type = RW;\n  Squash = No_Root_Squash;\n"
            "  SecType = sys;\n  Protocols = 3, 4;\n  Transports = TCP;\n"
            "  FSAL {\n    Name = VFS;\n  }\n}\n")
        (work / "recov").mkdir(exist_ok=True)
        # NFS v3 servers register with rpcbind (ganesha stops without one): an rpcbind of its own, in a
        # mount namespace whose /run is private, so its socket is not the machine's
        ganesha = (f"ganesha.nfsd -F -f {conf} -L {work}/ganesha.log -p {work}/ganesha.pid -N NIV_EVENT")
        script = ("mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/rpcbind && "
                  f"{{ rpcbind -f -w & sleep 1; exec {ganesha}; }}")
        self.proc = lab.start(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              work / "ganesha.out")
        lab.wait_port(2049, "ganesha.nfsd")


class Sshd:
    """OpenSSH's sshd on 10.16.0.1:2222 with a throwaway host key; root logs in with a throwaway key
    (``work``/user_key) and gets the built-in SFTP server."""

    PORT = 2222

    def __init__(self, lab: Lab, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.root = work / "srv"
        self.root.mkdir(exist_ok=True)
        for name in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)],
                           check=True)
        self.fingerprint = subprocess.run(["ssh-keygen", "-lf", str(work / "host_key.pub")],
                                          capture_output=True, text=True, check=True).stdout.split()[1]
        conf = work / "sshd_config"
        conf.write_text(f"ListenAddress {ADDRESS}:{self.PORT}\nHostKey {work}/host_key\n"
                        f"PidFile {work}/sshd.pid\nAuthorizedKeysFile {work}/user_key.pub\n"
                        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                        "Subsystem sftp internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        lab.start(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], work / "sshd.log")
        lab.wait_port(self.PORT, "sshd")
