"""Issue 16 on the rescue media: the network at boot, `rescue net`, and backup folders on SMB and NFS.

One VM (direct kernel boot, TCG) with two network cards on a bridge inside a network namespace the test
creates (tests/media/netlab.py): a virtio card that gets its address from dnsmasq's DHCP there, and an
e1000 card that `rescue.net=MAC,ADDR/PREFIX,,DNS` gives a static address. This machine's kernel has
neither a cifs nor an NFS client, so the SMB and NFS folders are proven inside the VM, whose Debian
kernel has them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_root_tools
from tests.media.live import SUCCESS, built_live, direct_boot, raw_disk, read_log, virtio
from tests.media.netlab import ADDRESS, NET, Lab

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]
MiB = 1 << 20
STATIC_MAC, STATIC_ADDRESS, STATIC_DNS = "52:54:00:16:00:03", f"{NET}.9", f"{NET}.53"


def section(log: str, name: str) -> str:
    """What the run script printed between its ``== name`` marker and the next marker."""
    m = re.search(rf"^== {re.escape(name)}\n(.*?)(?=^== |^rescue-run: exit)", log, re.DOTALL | re.MULTILINE)
    assert m, f"no section {name!r} in the run log:\n{log}"
    return m.group(1)


def json_of(text: str) -> Any:
    start = min(i for i in (text.find("{"), text.find("[")) if i >= 0)
    return json.JSONDecoder().raw_decode(text[start:])[0]


def test_network_folders_in_vm(tmp_path: Path) -> None:
    need_root_tools("qemu-system-x86_64", "dnsmasq", "ip", "nsenter")
    built = built_live()
    lab = Lab(tmp_path / "lab")
    try:
        subprocess.run(["ip", "-n", lab.name, "tuntap", "add", "dev", "tap1", "mode", "tap"], check=True)
        subprocess.run(["ip", "-n", lab.name, "link", "set", "tap1", "master", "br0", "up"], check=True)
        dhcp_log = lab.dnsmasq()
        script = "\n".join([
            "echo '== state'", "head /run/rescue-net/*",
            "echo '== addresses'", "ip addr",
            "echo '== routes'", "ip route",
            "echo '== resolv'", "cat /etc/resolv.conf",
            "echo '== ping'", f"ping -c 1 {ADDRESS}",
        ])
        (tmp_path / "scripts").mkdir()
        (tmp_path / "scripts" / "run.sh").write_text(script + "\n")
        log_disk = raw_disk(tmp_path / "log.img", 4 * MiB)
        # the script travels on a small ext4 disk: rescue.run is one line of the kernel command line
        scripts = raw_disk(tmp_path / "scripts.img", 8 * MiB)
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tmp_path / "scripts"), str(scripts)],
                       check=True)
        nics = [*lab.qemu_nic(), "-netdev", "tap,id=n1,ifname=tap1,script=no,downscript=no",
                "-device", f"e1000,netdev=n1,mac={STATIC_MAC}"]
        run = direct_boot(built, [virtio(log_disk), virtio(scripts, readonly=True), nics],
                          "console=ttyS0,115200n8 rescue.debugexit=1 rescue.log=/dev/vda "
                          f"rescue.net={STATIC_MAC},{STATIC_ADDRESS}/24,,{STATIC_DNS} "
                          'rescue.run="mkdir -p /run/s && mount -o ro /dev/vdb /run/s && sh /run/s/run.sh"',
                          timeout=900, prefix=lab.prefix)
    finally:
        lab.close()
    log = read_log(log_disk)
    assert run.exit_code == SUCCESS, f"exit {run.exit_code}\n{log or run.serial[-3000:]}"

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
