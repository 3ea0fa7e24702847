#!/usr/bin/env bash
# Set up a Debian 12 machine (as root) to develop and test the project: the system packages the code and
# the tests use, then a virtualenv at .venv with the project installed editable with its test and FUSE
# extras. Idempotent: packages already installed and an up-to-date .venv are left alone, so CI can run
# it every time. Works from any cwd.
#
#   bash scripts/setup.sh            # PYTHON=/path/to/python3 to pick another interpreter for the venv
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's own interpreter, not the first python3 on PATH (pyenv, conda, ...): only Debian's reaches
# python3-hivex (an apt package, not on PyPI) through --system-site-packages.
PYTHON="${PYTHON:-/usr/bin/python3}"

# Why each package is here:
PACKAGES=(
    python3 python3-venv python3-dev python3-pip   # interpreter, venv, headers for pyfuse3's C extension
    build-essential pkg-config libfuse3-dev        # build pyfuse3 from source (pkg-config finds fuse3)
    fuse3                                          # fusermount3, /dev/fuse users (ntfs-3g, our FUSE mount)
    fusefat                                        # browse FAT partitions (the ESP) of a mounted image
    ntfs-3g                                        # ntfs-3g, mkntfs, ntfsinfo, ntfscat, ntfsfix, ntfsresize, ntfsclone
    fdisk gdisk                                    # sfdisk (MBR/GPT, --json), sgdisk (GPT, -v)
    dosfstools mtools                              # mkfs.vfat/fsck.vfat, mcopy/mdir for the ESP without a vfat driver
    partclone                                      # reference imager the tests compare against
    util-linux mount kmod udev                     # losetup, blkid, umount, modprobe loop/fuse, device events
    zstd xz-utils                                  # compression CLI; the SYSTEM hive fixture is .xz
    libhivex-bin python3-hivex                     # hivexsh/hivexget/hivexregedit to check hives we write
    syslinux-common                                # /usr/lib/syslinux/mbr/mbr.bin: GPL MBR boot code
    coreutils ca-certificates                      # cp --sparse/--reflink; TLS for pip
    time                                           # /usr/bin/time: each command's own peak RSS (tests/scale, bench)
    xorriso                                        # rescue-build: the hybrid BIOS/UEFI ISO
    e2fsprogs                                      # mke2fs: ext4 backup disks in the boot tests (and in the image)
    qemu-system-x86 ovmf                           # boot tests: QEMU (TCG), UEFI firmware incl. Secure Boot vars
    tmux                                           # tests/guide: drives `rescue guide` in a real 80x25 terminal
    sshfs rclone                                   # sftp:// and s3:// backup folders (issue 16): the clients that mount them
    openssh-server                                 # tests/remote: a real sshd (and sftp-server) in a test's network namespace
    iproute2                                       # tests/remote: ip netns, the namespace the test servers listen in
    dnsmasq-base samba cifs-utils                  # tests/media/test_network: DHCP for the VM, an SMB server (smbpasswd)
    nfs-common nfs-ganesha nfs-ganesha-vfs         # mount.nfs for the media; an NFS server (this kernel has no nfsd)
    mdadm                                          # rescue-build: mdadm/mdmon on the media (md RAID, Intel RST); tests/media/test_raid
    wine64 gcc-mingw-w64-x86-64 osslsigncode       # builder/wine.py: Windows CPython under Wine, test-only shim, signatures
    wimtools                                       # rescue-build winpe: wimexport/wimupdate/wimdir of boot.wim
    p7zip-full                                     # rescue-build winpe --windows-iso: reads the ISO's UDF, no mount
    syslinux                                       # rescue-build winpe --usb: FAT32 boot sector, chain.c32 to bootmgr
    udpcast                                        # rescue serve/receive: udp-sender, udp-receiver (multicast restore)
    nftables                                       # tests/multicast: random packet loss on one PC's link (nft numgen)
)

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (apt-get, loop devices, FUSE)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ] || [ -n "${SETUP_FORCE_APT:-}" ]; then
    echo "setup.sh: installing ${missing[*]:-(forced)}"
    export DEBIAN_FRONTEND=noninteractive
    # No package may start a service: openssh-server would otherwise start an sshd on every address of
    # this machine. The tests start their own servers, inside network namespaces they create. policy-rc.d
    # (exit 101: "action forbidden") is honoured by invoke-rc.d and deb-systemd-invoke; one that is
    # already there (a container's) is left as it is.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    if [ -n "$(trap -p EXIT)" ]; then rm -f "$policy"; trap - EXIT; fi
fi

# Loop devices and FUSE: load the modules if their control nodes are missing (no-op in containers
# where the host provides them; failure here is reported by the tests that need them).
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || echo "setup.sh: warning: no loop device support" >&2
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || echo "setup.sh: warning: no /dev/fuse" >&2

# --system-site-packages: with Debian's /usr/bin/python3 this makes python3-hivex importable in the venv;
# pip still installs everything else the project pins into .venv. A venv made from another interpreter
# (an earlier PYTHON, a pyenv python3) is made anew.
base="$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
if [ "$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null)" != "$base" ]; then
    rm -rf .venv
    "$PYTHON" -m venv --system-site-packages .venv
fi

# Reinstall only when pyproject.toml changed (the install is editable, so code changes need nothing).
stamp=.venv/.setup-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test,fuse,build]'
    echo "$want" > "$stamp"
fi

echo "setup.sh: ready ($(.venv/bin/python --version), $(.venv/bin/python -c 'import sys; print(sys.prefix)'))"
