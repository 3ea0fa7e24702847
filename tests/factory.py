"""Test-disk factory: realistic Windows 7 disks (MBR/BIOS and GPT/UEFI) as sparse image files.

Built only with the real tools: sfdisk/sgdisk for the tables, mkntfs on a loop device (hidden sectors =
partition start, 512-byte sectors, 255/63 geometry, as Windows writes them), mkfs.vfat + mtools for the
ESP, ntfs-3g to fill the volumes. File content is deterministic from ``seed`` (``tests.factory_content``);
NTFS serials and timestamps are not.

Tests should use ``cached_disk(kind)`` (built once per factory version and parameters, shared between
test processes under a file lock) and copy the image with ``copy_disk`` before changing it.

    python3 -m tests.factory KIND OUT.img     # build one disk (e.g. the "few hundred MB" demo kinds)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from core.bcd.device import GptPartitionId, MbrPartitionId, PartitionId
from tests import factory_content as fc
from tests import win7_hives
from tests.factory_content import FactoryError
from tests.factory_tree import boot_image, populate_windows
from tests.ntfs3g import MTOOLS_ENV, attached, mounted_ntfs, run

# Bump whenever the layout or content changes: it is part of the cache key.
FACTORY_VERSION = 3

SECTOR = 512
MiB = 1 << 20
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")  # GPL boot code (syslinux-common); Windows' is not shipped

Role = Literal["system-reserved", "esp", "msr", "windows"]
GPT_TYPES = {  # sgdisk code -> type GUID (lowercase, as core.partition.model.Partition.type_id)
    "EF00": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "0C01": "e3c9e316-0b5c-4db8-817d-f92df00215ae",
    "0700": "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
}


@dataclass(frozen=True)
class PartInfo:
    number: int
    start: int  # bytes from the start of the disk
    size: int  # bytes
    role: Role
    type_id: str  # MBR "0x07"; GPT type GUID (lowercase)
    fs: str | None  # "ntfs", "vfat" or None (MSR: raw zeros)
    label: str = ""
    guid: str | None = None  # GPT unique partition GUID (lowercase)
    name: str = ""  # GPT partition name
    bootable: bool = False

    @property
    def start_sector(self) -> int:
        return self.start // SECTOR


@dataclass
class DiskInfo:
    path: Path
    size: int
    scheme: Literal["mbr", "gpt"]
    disk_id: str  # MBR "0x1234abcd" / GPT disk GUID (lowercase), as core.partition.model.PartitionTable
    partitions: tuple[PartInfo, ...]
    seed: int
    # partition number -> what the factory wrote, in tests.ntfs3g.file_hashes format (deleted files absent)
    manifest: dict[int, dict[str, str]] = field(default_factory=dict)

    def part(self, role: Role) -> PartInfo:
        for p in self.partitions:
            if p.role == role:
                return p
        raise KeyError(role)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return json.dumps(d)

    @classmethod
    def from_json(cls, s: str, path: Path | None = None) -> DiskInfo:
        d = json.loads(s)
        parts = tuple(PartInfo(**p) for p in d.pop("partitions"))
        manifest = {int(k): v for k, v in d.pop("manifest").items()}
        d["path"] = Path(path or d["path"])
        return cls(partitions=parts, manifest=manifest, **d)


def _guid(seed: int, what: str) -> str:
    return fc.seeded_guid(seed, what)


def _new_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)  # sparse: only what the tools write takes space


def _mkntfs(path: Path, p: PartInfo) -> None:
    with attached(path, p.start, p.size, readonly=False) as dev:
        # -s/-p/-H/-S: a loop device reports no geometry or partition start, so give Windows' values;
        # hidden sectors (-p) must be the partition's absolute start or the VBR cannot load bootmgr.
        run(["mkntfs", "-Q", "-F", "-q", "-s", str(SECTOR), "-c", "4096", "-p", str(p.start_sector),
             "-H", "255", "-S", "63", "-L", p.label, dev])


def _config_files(boot: PartitionId, windows: PartitionId, seed: int,
                  dirty_system: bool | str) -> dict[str, bytes]:
    """The hives of Windows\\System32\\config made by our writer: SYSTEM naming this disk, BCD-Template."""
    if dirty_system == "logged":
        return {**win7_hives.logged_dirty_system(boot, windows, seed=seed),
                "BCD-Template": win7_hives.bcd_template()}
    return {"SYSTEM": win7_hives.system_hive(boot, windows, seed=seed, dirty=bool(dirty_system)),
            "BCD-Template": win7_hives.bcd_template()}


def _c_tree_size(data_mb: int, pagefile_mb: int, hiberfil_mb: int, garbage_mb: int) -> int:
    # the hives and NTFS metadata come on top of data_mb (8 MiB is room to spare); the garbage is deleted again
    # but needs room while it is written; keep ~1/3 free like a real C:
    need = data_mb + 8 + pagefile_mb + hiberfil_mb + garbage_mb
    return max(64, (need * 3 // 2 + 15) // 16 * 16) * MiB


def build_win7_mbr(path: str | os.PathLike[str], size: int | None = None, c_size: int | None = None,
                   data_mb: int = 40, seed: int = 1, pagefile_mb: int = 8, hiberfil_mb: int = 4,
                   garbage_mb: int | None = None, hiberfil_magic: bytes = b"hibr",
                   c_label: str = "Windows 7", dirty_system: bool | str = False) -> DiskInfo:
    """BIOS/MBR Windows 7 disk: 1 "System Reserved" 100 MiB NTFS at 1 MiB, active; 2 C: NTFS.

    ``size``/``c_size`` in bytes (``None``: just big enough for the data; ``c_size=None``: C: fills
    the disk, otherwise the rest stays unpartitioned). Both partitions are type 0x07. The BCD store and
    the SYSTEM hive name this disk's partitions (``tests.win7_hives``); ``dirty_system``: the SYSTEM
    hive is left dirty, as after a crash in the middle of a registry write: ``True`` with its log lost
    (a zeroed SYSTEM.LOG1), ``"logged"`` with the SYSTEM.LOG1 Windows 7 wrote before the crash.
    """
    garbage = data_mb // 4 if garbage_mb is None else garbage_mb
    c_bytes = c_size or _c_tree_size(data_mb, pagefile_mb, hiberfil_mb, garbage)
    size = size or (101 * MiB + c_bytes)
    c_bytes = c_size or (size - 101 * MiB) // MiB * MiB
    if 101 * MiB + c_bytes > size or c_bytes < 32 * MiB:
        raise FactoryError(f"C: of {c_bytes} bytes does not fit a {size}-byte disk")
    p = Path(path)
    sig = int(hashlib.sha256(f"{seed}:mbr-signature".encode()).hexdigest()[:8], 16) or 1
    parts = (
        PartInfo(1, MiB, 100 * MiB, "system-reserved", "0x07", "ntfs", "System Reserved", bootable=True),
        PartInfo(2, 101 * MiB, c_bytes, "windows", "0x07", "ntfs", c_label),
    )
    _new_file(p, size)
    script = f"label: dos\nlabel-id: 0x{sig:08x}\nunit: sectors\nsector-size: {SECTOR}\n\n" + "".join(
        f"start={q.start_sector}, size={q.size // SECTOR}, type=7{', bootable' if q.bootable else ''}\n"
        for q in parts)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(p)], input=script.encode())
    if MBR_CODE.exists():
        with p.open("r+b") as f:  # boot code only: bytes 440.. (signature, table) are sfdisk's
            f.write(MBR_CODE.read_bytes()[:440])
    info = DiskInfo(p, size, "mbr", f"0x{sig:08x}", parts, seed)
    boot, win = (MbrPartitionId(sig, q.start) for q in parts)
    for q in parts:
        _mkntfs(p, q)
    with mounted_ntfs(p, parts[0].start, parts[0].size, readonly=False) as mnt:
        info.manifest[1] = populate_system_reserved(fc.Tree(mnt, ntfs=True), seed,
                                                    win7_hives.bcd_store(boot, win, seed=seed))
    with mounted_ntfs(p, parts[1].start, parts[1].size, readonly=False) as mnt:
        info.manifest[2] = populate_windows(fc.Tree(mnt, ntfs=True), seed, data_mb, pagefile_mb, hiberfil_mb,
                                            garbage, _config_files(boot, win, seed, dirty_system), hiberfil_magic)
    return info


def build_win7_gpt(path: str | os.PathLike[str], size: int | None = None, c_size: int | None = None,
                   data_mb: int = 40, seed: int = 2, pagefile_mb: int = 8, hiberfil_mb: int = 4,
                   garbage_mb: int | None = None, hiberfil_magic: bytes = b"hibr",
                   c_label: str = "Windows 7", dirty_system: bool | str = False) -> DiskInfo:
    """UEFI/GPT Windows 7 disk: 1 ESP 100 MiB FAT32, 2 MSR 128 MiB (zeros), 3 C: NTFS basic data.

    Sizes, hives and ``dirty_system`` as for ``build_win7_mbr``; the last MiB stays free for the backup GPT.
    """
    garbage = data_mb // 4 if garbage_mb is None else garbage_mb
    c_bytes = c_size or _c_tree_size(data_mb, pagefile_mb, hiberfil_mb, garbage)
    size = size or (230 * MiB + c_bytes)
    if c_size is None:
        c_bytes = size - 229 * MiB - 33 * SECTOR  # up to the last usable LBA
    if 229 * MiB + c_bytes + 33 * SECTOR > size or c_bytes < 32 * MiB:
        raise FactoryError(f"C: of {c_bytes} bytes does not fit a {size}-byte disk")
    p = Path(path)

    def g(what: str) -> str:
        return _guid(seed, what)

    parts = (
        PartInfo(1, MiB, 100 * MiB, "esp", GPT_TYPES["EF00"], "vfat", "", g("esp"), "EFI system partition"),
        PartInfo(2, 101 * MiB, 128 * MiB, "msr", GPT_TYPES["0C01"], None, "", g("msr"),
                 "Microsoft reserved partition"),
        PartInfo(3, 229 * MiB, c_bytes, "windows", GPT_TYPES["0700"], "ntfs", c_label, g("windows"),
                 "Basic data partition"),
    )
    _new_file(p, size)
    cmd = ["sgdisk", "-o", "-U", g("disk")]  # -o: fresh GPT; each sgdisk write costs ~1 s of sync+sleep
    for q, code in zip(parts, ("EF00", "0C01", "0700"), strict=True):
        end = q.start_sector + q.size // SECTOR - 1
        cmd += [f"-n{q.number}:{q.start_sector}:{end}", f"-t{q.number}:{code}",
                f"-c{q.number}:{q.name}", f"-u{q.number}:{q.guid}"]
    run([*cmd, str(p)])
    info = DiskInfo(p, size, "gpt", g("disk"), parts, seed)
    esp = parts[0]
    boot, win = GptPartitionId(g("disk"), g("esp")), GptPartitionId(g("disk"), g("windows"))
    # 512-byte clusters like Windows' format of a 100 MB FAT32 volume; 255/63 geometry rounds the
    # filesystem down to whole tracks (204750 of 204800 sectors), leaving a tail outside the FS.
    run(["mkfs.vfat", "-F", "32", "-s", "1", "-S", str(SECTOR), "-g", "255/63", "-h", str(esp.start_sector),
         "-i", g("esp-serial")[:8], f"--offset={esp.start_sector}", str(p), str(esp.size // 1024)])
    with tempfile.TemporaryDirectory(prefix="esp-") as tmp:
        tree = fc.Tree(Path(tmp), ntfs=False)
        info.manifest[1] = populate_esp(tree, seed, win7_hives.bcd_store(boot, win, seed=seed))
        run(["mcopy", "-s", "-i", f"{p}@@{esp.start}", *[str(x) for x in sorted(Path(tmp).iterdir())], "::/"],
            env=MTOOLS_ENV)
    _mkntfs(p, parts[2])
    with mounted_ntfs(p, parts[2].start, parts[2].size, readonly=False) as mnt:
        info.manifest[3] = populate_windows(fc.Tree(mnt, ntfs=True), seed, data_mb, pagefile_mb, hiberfil_mb,
                                            garbage, _config_files(boot, win, seed, dirty_system), hiberfil_magic)
    return info


def populate_system_reserved(t: fc.Tree, seed: int, bcd: bytes) -> dict[str, str]:
    """bootmgr and \\Boot as Windows 7 setup leaves them on the System Reserved partition."""
    t.write("bootmgr", boot_image(seed, "bootmgr", 375 * 1024))
    t.write("Boot/BCD", bcd)
    t.write("Boot/BCD.LOG", b"")
    t.write("Boot/bootstat.dat", bytes(64 * 1024))
    t.write("Boot/memtest.exe", boot_image(seed, "memtest", 470 * 1024))
    for lang in ("en-US", "de-DE"):
        t.write(f"Boot/{lang}/bootmgr.exe.mui", fc.text(fc.rng_for(seed, "mui" + lang), 80 * 1024))
        t.write(f"Boot/{lang}/memtest.exe.mui", fc.text(fc.rng_for(seed, "mt" + lang), 40 * 1024))
    t.write("Boot/Fonts/wgl4_boot.ttf", fc.random_bytes(fc.rng_for(seed, "font"), 45 * 1024))
    for rel in ("bootmgr", "Boot"):
        t.attrib(rel, fc.ATTR_HIDDEN | fc.ATTR_SYSTEM)
    return t.manifest


def populate_esp(t: fc.Tree, seed: int, bcd: bytes) -> dict[str, str]:
    """\\EFI\\Microsoft\\Boot and the fallback \\EFI\\Boot\\bootx64.efi (a copy of bootmgfw.efi)."""
    bootmgfw = boot_image(seed, "bootmgfw.efi", 650 * 1024)
    t.write("EFI/Microsoft/Boot/bootmgfw.efi", bootmgfw)
    t.write("EFI/Microsoft/Boot/BCD", bcd)
    t.write("EFI/Microsoft/Boot/en-US/bootmgfw.efi.mui", fc.text(fc.rng_for(seed, "efimui"), 80 * 1024))
    t.write("EFI/Microsoft/Boot/Fonts/wgl4_boot.ttf", fc.random_bytes(fc.rng_for(seed, "font"), 45 * 1024))
    t.write("EFI/Microsoft/Boot/memtest.efi", boot_image(seed, "memtest.efi", 600 * 1024))
    t.write("EFI/Boot/bootx64.efi", bootmgfw)
    return t.manifest


# ---------------------------------------------------------------------------------------------- cache

KINDS: dict[str, tuple[Callable[..., DiskInfo], dict[str, Any]]] = {
    "mbr-tiny": (build_win7_mbr, {"data_mb": 8, "seed": 11, "pagefile_mb": 2, "hiberfil_mb": 1}),
    "gpt-tiny": (build_win7_gpt, {"data_mb": 8, "seed": 12, "pagefile_mb": 2, "hiberfil_mb": 1}),
    "mbr-small": (build_win7_mbr, {"data_mb": 40, "seed": 1}),
    "gpt-small": (build_win7_gpt, {"data_mb": 40, "seed": 2}),
    # The demo disks were shut down normally (hiberfil.sys not holding a session), as most are.
    "mbr-demo": (build_win7_mbr, {"data_mb": 300, "seed": 3, "pagefile_mb": 64, "hiberfil_mb": 48,
                                  "hiberfil_magic": b"wake"}),
    "gpt-demo": (build_win7_gpt, {"data_mb": 300, "seed": 4, "pagefile_mb": 64, "hiberfil_mb": 48,
                                  "hiberfil_magic": b"wake"}),
}


def cache_dir() -> Path:
    return Path(os.environ.get("RESCUE_TEST_CACHE", "/var/tmp/rescue-test-cache"))


def _cache_key(
    kind: str, overrides: dict[str, object]
) -> tuple[Callable[..., DiskInfo], dict[str, Any], str]:
    if kind not in KINDS:
        raise FactoryError(f"unknown disk kind {kind!r}; known: {', '.join(KINDS)}")
    builder, params = KINDS[kind]
    params = {**params, **overrides}
    blob = json.dumps([FACTORY_VERSION, builder.__name__, params], sort_keys=True, default=repr)
    return builder, params, f"{kind}-v{FACTORY_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_disk_info(kind: str, **overrides: object) -> DiskInfo:
    """Build the ``kind`` disk once (per factory version and parameters) and return its DiskInfo.

    The image in the cache is shared: never write to ``info.path``, ``copy_disk`` it first.
    """
    builder, params, key = _cache_key(kind, overrides)
    img, meta = cache_dir() / f"{key}.img", cache_dir() / f"{key}.json"
    with _locked(cache_dir() / f"{key}.lock"):
        if not (img.exists() and meta.exists()):
            for stale in cache_dir().glob(f"{key}.img.tmp*"):  # left by a builder that was killed
                stale.unlink()
            tmp = img.with_name(f"{img.name}.tmp{os.getpid()}")
            try:
                info = builder(tmp, **params)
                meta.write_text(DiskInfo(**{**info.__dict__, "path": img}).to_json())
                tmp.replace(img)  # the image appears only once complete
            finally:
                tmp.unlink(missing_ok=True)
    return DiskInfo.from_json(meta.read_text(), img)


def cached_disk(kind: str, **overrides: object) -> Path:
    """Path of the cached, shared (do not modify) image of ``kind``; see ``cached_disk_info``."""
    return cached_disk_info(kind, **overrides).path


def copy_disk(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy an image keeping it sparse (reflink where the filesystem can)."""
    run(["cp", "--reflink=auto", "--sparse=always", os.fspath(src), os.fspath(dst)])
    return Path(dst)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in KINDS:
        print(f"usage: python3 -m tests.factory {{{','.join(KINDS)}}} OUT.img", file=sys.stderr)
        return 2
    builder, params = KINDS[argv[0]]
    info = builder(argv[1], **params)
    print(json.dumps({k: v for k, v in json.loads(info.to_json()).items() if k != "manifest"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
