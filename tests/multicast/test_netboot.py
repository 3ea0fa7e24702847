"""A room of two PCs boots from the network and is restored: `rescue serve --boot` on a bridge in a test's
namespace (`netlab`), dnsmasq as the DHCP server of that isolated network, and two QEMU PCs on tap
devices, one SeaBIOS (its card's ROM is iPXE, which runs the session's boot.ipxe), one OVMF with Secure
Boot on and Microsoft's keys (shim -> Debian's signed GRUB network image -> Debian's signed kernel),
each with a blank disk. Both run `rescue receive` from their kernel command line, restore, report,
and power off; both disks are then compared with a restore from the folder.

The same with the session as a proxy DHCP beside the network's own DHCP server (the default), for a
BIOS PC. One session per case, the PCs at once, a 96 MiB disk: the QEMU part of CI stays short (TCG). Guards R-72.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.netboot import build_tree
from tests.conftest import need_root_tools
from tests.factory import cache_dir
from tests.media.live import QEMU, built_live, firmware
from tests.multicast.netlab import Lab
from tests.multicast.test_session import PORT, SIZE, finish, image, serve  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root, pytest.mark.slow]

BOOT_TIMEOUT = 900.0


def start_vm(lab: Lab, args: list[str], serial: Path) -> subprocess.Popen[bytes]:
    """A QEMU PC (TCG, 1 GiB, serial console into ``serial``) whose tap device is in the lab's hub."""
    cmd = ["nsenter", f"--net={lab.hub.path}", QEMU, "-accel", "tcg", "-m", "1G", "-nographic", "-no-reboot",
           "-monitor", "none", "-serial", "stdio", *args]
    with open(serial, "wb") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("dhcp", ["proxy", "range"])
def test_pcs_boot_from_the_network_and_are_restored(dhcp: str, image: tuple[Path, str, bytes],
                                                        tmp_path: Path) -> None:
    """``range``: the session is the network's DHCP server, a BIOS and a Secure Boot PC. ``proxy`` (the
    default): the network has its own DHCP server (dnsmasq on another host, addresses only) and the
    session answers as a proxy DHCP; a BIOS PC only (UEFI through Debian's GRUB stops after GRUB starts:
    README "Restore a room of PCs")."""
    need_root_tools(QEMU, "dnsmasq")
    folder, digest, ref = image
    built = built_live()
    tree = build_tree(tmp_path / "boot", built.kernel, built.initrd, cache_dir() / "rescue-build-work" / "debs")
    lab = Lab()
    vms: dict[str, subprocess.Popen[bytes]] = {}
    site: subprocess.Popen[bytes] | None = None
    try:
        srv, addr = lab.host()
        mode_args = ["--dhcp-range", "10.77.0.100,10.77.0.150"]
        if dhcp == "proxy":
            site_ns, _ = lab.host()
            site = site_ns.popen(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                                  "--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.150,1h",
                                  f"--dhcp-leasefile={tmp_path / 'site.leases'}", "--log-dhcp", "--log-facility=-"],
                                 tmp_path / "site-dhcp.log")
            mode_args = []
        pcs = ("bios", "secureboot") if dhcp == "range" else ("bios",)
        server = serve(srv, folder, "--clients", str(len(pcs)), "--wait", "600", "--boot", str(tree), *mode_args,
                       "--append", "console=ttyS0,115200n8", "--stall", "300")
        disks = {}
        for n, mode in enumerate(pcs, start=1):
            tap = f"tap{n}"
            for cmd in (["ip", "tuntap", "add", tap, "mode", "tap"], ["ip", "link", "set", tap, "master", "br0", "up"]):
                r = lab.hub.run(cmd)
                assert r.returncode == 0, r.stderr
            disk = tmp_path / f"{mode}.img"
            with open(disk, "wb") as f:
                f.truncate(SIZE)
            disks[mode] = disk
            vms[mode] = start_vm(lab, [*firmware(tmp_path, mode),
                                       "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                                       "-device", f"virtio-net-pci,netdev=n0,mac=52:54:00:77:00:0{n},bootindex=1",
                                       "-drive", f"file={disk},format=raw,if=none,id=d0",
                                       "-device", "virtio-blk-pci,drive=d0"], tmp_path / f"{mode}.serial")
        code, out, err = finish(server, timeout=BOOT_TIMEOUT)
        for vm in vms.values():
            try:
                vm.wait(timeout=120)  # each powers off once it has reported
            except subprocess.TimeoutExpired:
                pass
        serials = "\n".join(f"--- {m}: {(tmp_path / f'{m}.serial').read_text(errors='replace')[-2500:]}"
                             for m in vms)
        assert code == 0, err[-3000:] + serials
        rows = out["clients"]
        assert isinstance(rows, list)
        assert sorted(r["mac"] for r in rows) == [f"52:54:00:77:00:0{n}" for n in range(1, len(pcs) + 1)], rows
        assert all(r["state"] == "done" and r["mode"] == "multicast" for r in rows), rows
        for mode, disk in disks.items():
            assert disk.read_bytes() == ref, f"the {mode} PC's disk differs from a restore from the folder"
        if "secureboot" in pcs:
            assert "Secure Boot on" in (tmp_path / "secureboot.serial").read_text(errors="replace"), serials
    finally:
        for vm in vms.values():
            if vm.poll() is None:
                vm.kill()
                vm.wait()
        if site is not None:
            site.kill()
            site.wait()
        lab.close()
