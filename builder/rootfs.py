"""Assemble the initramfs tree: busybox, the frozen rescue CLI, the disk tools with their libraries,
kernel modules, the console keymaps and the linux-live files (init, hotplug helper, console session,
shutdown, network, profile).

The tree is merged-/usr like Debian 12 (bin, sbin, lib, lib64 are links into /usr), so library paths
that ``ldd`` reports on the build host (/lib/x86_64-linux-gnu/...) are valid inside the image too.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from builder.errors import BuildError, MissingTool
from builder.host import run, which

MERGED = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
DIRS = ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "dev", "proc", "sys", "run", "tmp", "mnt", "root",
        "etc", "var/log", "opt")
ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "group": "root:x:0:\n",
    "fstab": "",
    "hostname": "rescue\n",
    "mtools.conf": "mtools_skip_check=1\n",  # FAT volumes made by other tools: do not refuse odd geometry
    # libtirpc (mount.nfs of NFS v3: rpcbind, MOUNT) finds its transports here
    "netconfig": "".join(f"{n:<8}{s:<14}{f:<4}{fam:<10}{p:<6}-   -\n" for n, s, f, fam, p in (
        ("udp", "tpi_clts", "v", "inet", "udp"), ("tcp", "tpi_cots_ord", "v", "inet", "tcp"),
        ("udp6", "tpi_clts", "v", "inet6", "udp"), ("tcp6", "tpi_cots_ord", "v", "inet6", "tcp"),
        ("rawip", "tpi_raw", "-", "inet", "-"), ("local", "tpi_cots_ord", "-", "loopback", "-"),
        ("unix", "tpi_cots_ord", "-", "loopback", "-"))),
    # mount.nfs looks up its transports (getprotobyname "tcp") and RPC programs by name
    "protocols": "ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\nipv6 41 IPv6\nipv6-icmp 58 IPv6-ICMP\n",
    "services": "sunrpc 111/tcp portmapper\nsunrpc 111/udp portmapper\nnfs 2049/tcp\nnfs 2049/udp\n"
                "microsoft-ds 445/tcp\nssh 22/tcp\n",
    "rpc": "portmapper 100000 portmap sunrpc rpcbind\nnfs 100003 nfsprog\nmountd 100005 mount showmount\n"
           "nlockmgr 100021\nstatus 100024\n",
}
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def in_tree(root: Path, host_path: str) -> Path:
    """Where an absolute host path lands in the merged-/usr tree."""
    rel = host_path.lstrip("/")
    top, _, rest = rel.partition("/")
    if top in MERGED:
        rel = MERGED[top] + ("/" + rest if rest else "")
    return root / rel


def skeleton(root: Path) -> None:
    for d in DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    for link, target in MERGED.items():
        (root / link).symlink_to(target)
    os.chmod(root / "tmp", 0o1777)
    for name, text in ETC.items():
        (root / "etc" / name).write_text(text)
    (root / "etc" / "mtab").symlink_to("/proc/mounts")


def _is_elf(p: Path) -> bool:
    with p.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def shared_libs(binary: Path, env: dict[str, str] | None = None) -> list[str]:
    """Absolute paths of the libraries (and the ELF interpreter) ``binary`` loads, by ldd."""
    try:
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, timeout=60,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(detail=f"ldd {binary} did not finish within 60 s") from None
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if proc.returncode != 0:
        raise BuildError(detail=f"ldd {binary} exited with {proc.returncode}: {out.strip()[-200:]}")
    missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
    if missing:
        raise BuildError(detail=f"{binary} needs libraries the build host lacks: {', '.join(missing)}")
    return sorted({m.group(1) for m in map(_LDD_LINE.search, out.splitlines()) if m})


def copy_libs(root: Path, binaries: list[Path], skip_under: Path | None = None,
              env: dict[str, str] | None = None) -> int:
    """Copy the libraries ``binaries`` load into ``root`` (content of the link target, at the path
    the loader asks for). Libraries under ``skip_under`` (the frozen folder's own) are left out."""
    count = 0
    for b in binaries:
        for lib in shared_libs(b, env):
            if skip_under is not None and Path(lib).resolve().is_relative_to(skip_under.resolve()):
                continue
            dest = in_tree(root, lib)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(lib).resolve(), dest)
                count += 1
    return count


def install_busybox(root: Path, busybox: Path) -> int:
    """busybox at /usr/bin/busybox and a link for each applet it has (real tools may replace them)."""
    dest = root / "usr/bin/busybox"
    shutil.copy2(busybox, dest)
    applets = run([str(dest), "--list-full"]).split()
    for a in applets:
        link = in_tree(root, "/" + a)
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/usr/bin/busybox")
    return len(applets)


def read_tools(path: Path) -> list[tuple[str, str]]:
    """(tool, Debian package) pairs from tools.list."""
    out = []
    for line in path.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            if len(fields) != 2:
                raise BuildError(detail=f"{path}: line {line!r} is not `TOOL PACKAGE`")
            out.append((fields[0], fields[1]))
    return out


def install_tools(root: Path, tools: list[tuple[str, str]]) -> list[Path]:
    """Copy host tools into ``root`` (same path, replacing busybox applets of that name), plus the
    links next to them that point at them (mcopy -> mtools, mkfs.ext4 -> mke2fs). Returns the copies."""
    copied: list[Path] = []
    for tool, package in tools:
        found = which(tool)
        if found is None:
            raise MissingTool(tool=tool, package=package)
        real = Path(found).resolve()
        dest = in_tree(root, str(real))
        for p in (dest, in_tree(root, found)):
            if p.is_symlink():
                p.unlink()  # a busybox applet of the same name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, dest)
        os.chmod(dest, stat.S_IMODE(real.stat().st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
        copied.append(dest)
        for sibling in real.parent.iterdir():
            if sibling.is_symlink() and sibling.resolve() == real:
                link = in_tree(root, str(sibling))
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(real.name)
        if in_tree(root, found) != dest and not in_tree(root, found).exists():
            in_tree(root, found).symlink_to(str(real))
    return copied


def install_frozen(root: Path, frozen: Path) -> list[Path]:
    """The frozen CLI folder at /opt/rescue and a /usr/bin/rescue launcher; its ELF files."""
    dest = root / "opt" / "rescue"
    shutil.copytree(frozen, dest, symlinks=True)
    launcher = root / "usr/bin/rescue"
    if launcher.exists() or launcher.is_symlink():
        launcher.unlink()
    launcher.write_text('#!/bin/sh\nexec /opt/rescue/rescue "$@"\n')
    launcher.chmod(0o755)
    return [p for p in dest.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]


# linux-live file -> where it goes in the tree, its mode
LIVE_FILES = (("init", "init", 0o755), ("hotplug", "usr/sbin/hotplug", 0o755),
              ("session", "usr/sbin/rescue-session", 0o755), ("shutdown", "usr/sbin/rescue-shutdown", 0o755),
              ("network", "usr/sbin/rescue-network", 0o755),
              ("raid", "usr/sbin/rescue-raid", 0o755),
              ("profile", "etc/profile", 0o644))
# busybox's applets of these names only signal an init that knows them (ours is a shell script):
# rescue-shutdown does the work, by the name it is called with
SHUTDOWN_NAMES = ("poweroff", "reboot", "halt")


def install_live_files(root: Path, live: Path, version: str) -> None:
    """init, the hotplug helper, the console session, shutdown and the shell profile from linux-live/."""
    for src, dst, mode in LIVE_FILES:
        target = root / dst
        if target.is_symlink():
            target.unlink()
        shutil.copyfile(live / src, target)
        target.chmod(mode)
    for name in SHUTDOWN_NAMES:
        for d in ("usr/sbin", "usr/bin"):  # wherever busybox put its applet link
            link = root / d / name
            if link.is_symlink() or link.exists():
                link.unlink()
        (root / "usr/sbin" / name).symlink_to("rescue-shutdown")
    (root / "etc" / "rescue-version").write_text(version + "\n")
    for name in ("mount.ntfs-3g", "mount.ntfs"):  # mount -t ntfs-3g / -t ntfs run these helpers
        link = root / "usr/sbin" / name
        if (root / "usr/bin/ntfs-3g").exists() and not link.exists():
            link.symlink_to("/usr/bin/ntfs-3g")


def list_tools(root: Path, tools: list[Path]) -> None:
    """/etc/rescue-tools: the programs copied in, by path. Busybox's shell runs its own applet of a
    name (fdisk, losetup, mke2fs ...) before any program of that name on PATH; the profile makes an
    alias of each of these paths, so that a shell user gets the real tool."""
    paths = sorted("/" + str(t.relative_to(root)) for t in tools)
    (root / "etc" / "rescue-tools").write_text("".join(p + "\n" for p in paths))


def install_keymaps(root: Path, kbd: Path, console_data: Path) -> Path:
    """kbd's loadkeys at /usr/bin/loadkeys (it finds a layout by name under /usr/share/keymaps, and
    reads the gzip-compressed keymaps through busybox's gzip) and console-data's PC keymaps (i386:
    qwerty, qwertz, azerty, dvorak and what they include, ~0.8 MB). Both are unpacked Debian packages.
    Returns the loadkeys copy (its libraries are copied with the tools')."""
    src = kbd / "bin" / "loadkeys"
    if not src.is_file():
        raise BuildError(detail=f"kbd has no bin/loadkeys in {kbd}")
    keymaps = console_data / "usr/share/keymaps/i386"
    if not (keymaps / "qwerty" / "us.kmap.gz").is_file():
        raise BuildError(detail=f"console-data has no keymaps in {keymaps}")
    dest = root / "usr/bin/loadkeys"
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    shutil.copy2(src, dest)
    shutil.copytree(keymaps, root / "usr/share/keymaps/i386", symlinks=True)
    return dest
