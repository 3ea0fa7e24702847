"""Network boot for a session: dnsmasq answering PXE on the session's interface, and TFTP serving the
rescue system with the session on its kernel command line.

The TFTP root is a folder of this session: the files of the boot tree (`builder/netboot.py`: kernel,
initramfs, undionly.kpxe, shimx64.efi, grubx64.efi; hard links when the filesystem allows, else copies)
and the two per-session configurations, ``boot.ipxe`` (BIOS, through iPXE) and ``grub/grub.cfg`` (UEFI,
through shim and GRUB). dnsmasq runs with no DNS, no configuration file but its arguments, bound to the
interface only: by default in proxy mode (it hands out no address, only the boot files, beside the
network's own DHCP server, through PXE boot services), or as the DHCP server for ``dhcp_range`` on an
isolated network (the boot file in the lease). Clients are told apart by their architecture option:
BIOS gets undionly.kpxe (or, when it already is iPXE, as QEMU's card ROM is, boot.ipxe at once); UEFI
(x86-64) gets shim.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import UsageError
from ..platform.tools import start

STARTUP = 2.0  # seconds dnsmasq gets to fail on its arguments, the interface, the ports or the folder
TREE = ("vmlinuz", "initrd.img", "undionly.kpxe", "shimx64.efi", "grubx64.efi")


def kernel_args(session: str, extra: str) -> str:
    # rescue.wait=0: no boot medium to wait for. The session address holds only [0-9a-f.:/[]] and
    # the user's extra arguments are theirs (e.g. console=ttyS0).
    return f"rescue.session={session} rescue.wait=0 {extra}".strip()


def tftp_root(tree: str, root: str, session: str, extra: str) -> str:
    missing = [n for n in TREE if not os.path.isfile(os.path.join(tree, n))]
    if missing:
        raise UsageError(detail=f"{tree} is not a network-boot tree (missing {', '.join(missing)}): make one "
                                "with rescue-build netboot")
    os.makedirs(os.path.join(root, "grub"), exist_ok=True)
    # dnsmasq serves TFTP as the unprivileged user it becomes: the folder must be readable by others
    # (it holds nothing secret: what any PC on the network may fetch).
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "grub"), 0o755)
    for name in TREE:
        dest = os.path.join(root, name)
        if os.path.exists(dest):
            os.unlink(dest)
        try:
            os.link(os.path.join(tree, name), dest)
        except OSError:
            shutil.copyfile(os.path.join(tree, name), dest)
    args = kernel_args(session, extra)
    with open(os.path.join(root, "boot.ipxe"), "w") as f:
        f.write(f"#!ipxe\nkernel vmlinuz {args}\ninitrd initrd.img\nboot\n")
    with open(os.path.join(root, "grub", "grub.cfg"), "w") as f:
        f.write(f"set timeout=0\nmenuentry rescue {{\n  linux /vmlinuz {args}\n  initrd /initrd.img\n}}\n")
    return root


def start_dnsmasq(interface: str, address: str, root: str, dhcp_range: str | None, log: str,
                  leases: str) -> subprocess.Popen[bytes]:
    if dhcp_range is not None:
        parts = dhcp_range.split(",")
        if len(parts) != 2 or not all(parts):
            raise UsageError(detail=f"--dhcp-range {dhcp_range!r}: give FIRST,LAST (10.9.0.100,10.9.0.200)")
        dhcp = f"--dhcp-range={parts[0]},{parts[1]},1h"
    else:
        dhcp = f"--dhcp-range={address},proxy"
    cmd = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--no-resolv", "--no-hosts",
           f"--interface={interface}", "--bind-interfaces", "--except-interface=lo", dhcp,
           f"--dhcp-leasefile={leases}", "--log-dhcp", "--log-facility=-", "--enable-tftp", f"--tftp-root={root}",
           "--dhcp-userclass=set:ipxe,iPXE",
           "--dhcp-match=set:efi64,option:client-arch,7", "--dhcp-match=set:efi64,option:client-arch,9"]
    if dhcp_range is None:
        # Proxy DHCP answers only through PXE boot services: BIOS PCs chain to iPXE, which asks again (user
        # class iPXE) and gets the session's script; x86-64 UEFI PCs (client architectures 7 and 9) get shim.
        cmd += ["--pxe-service=tag:!ipxe,x86PC,rescue,undionly.kpxe", "--pxe-service=tag:ipxe,x86PC,rescue,boot.ipxe",
                "--pxe-service=tag:!ipxe,x86-64_EFI,rescue,shimx64.efi",
                "--pxe-service=tag:!ipxe,BC_EFI,rescue,shimx64.efi"]
    else:
        # As the DHCP server: the boot file in the lease itself (no PXE menu, which some UEFI firmware
        # takes as a "boot locally" answer). An iPXE running as a UEFI driver gets nothing: shim
        # loaded through it reads GRUB wrongly (a 4 MiB buffer for the file), so the firmware's own
        # PXE, next in the boot order, fetches shim.
        cmd += ["--dhcp-boot=tag:efi64,tag:!ipxe,shimx64.efi", "--dhcp-boot=tag:!efi64,tag:ipxe,boot.ipxe",
                "--dhcp-boot=tag:!efi64,tag:!ipxe,undionly.kpxe"]
    proc = start(cmd, log=log)
    try:
        proc.wait(timeout=STARTUP)  # it checks its arguments, interface and folder first, then serves
    except subprocess.TimeoutExpired:
        return proc
    raise UsageError(detail=f"dnsmasq could not start ({_last_line(log)}): is another DHCP or TFTP server "
                            "running on this machine?")


def _last_line(log: str) -> str:
    try:
        with open(log, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip() and "FAILED to start up" not in ln]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no message"
