"""The C: tree of a factory-made Windows 7 disk (see ``tests.factory``).

``populate_windows`` fills a mounted NTFS volume with a Windows 7-shaped tree whose total size follows
``data_mb``: the hives it is given (SYSTEM, BCD-Template: ``tests.win7_hives``), boot loaders and
storage drivers under System32 (the files a boot repair looks at), DLLs, a user profile with documents,
pictures, videos, a zero-heavy ISO, many small files, deep nesting, unicode names, a fragmented file, a
sparse file, an NTFS-compressed log directory, hard links (WinSxS), junctions/symlinks, named streams,
pagefile.sys/hiberfil.sys, and deleted files whose clusters are left holding garbage.
"""

from __future__ import annotations

import hashlib
import random

from tests import factory_content as fc

MiB, KiB = fc.MiB, fc.KiB

DRIVERS = ("disk", "partmgr", "volmgr", "volmgrx", "ntfs", "storport", "ataport", "atapi", "msahci", "pciide",
           "pciidex", "intelide", "iaStorV", "amdsata", "LSI_SAS", "vmbus", "storvsc", "mountmgr", "fvevol")
DLL_STEMS = ("kernel32", "user32", "gdi32", "advapi32", "shell32", "ole32", "comctl32", "msvcrt", "ntdll",
             "rpcrt4", "ws2_32", "crypt32", "wininet", "mshtml", "d3d9", "dxgi", "winhttp", "bcrypt")
SIDE_BY_SIDE_EVERY = 7
FILLER = 128 * KiB  # size of the deleted garbage files
# ntfs-3g turned 32 chunks of 64 KiB, each followed by a 4 KiB blocker, into 11 runs (it allocates a
# little ahead); bigger chunks give fewer runs.
FRAG_CHUNK, FRAG_BLOCKER = 64 * KiB, 4 * KiB  # one DLL in seven also gets a WinSxS hard link


def boot_image(seed: int, name: str, size: int) -> bytes:
    """A boot loader look-alike; the same (seed, name) gives the same bytes on every partition."""
    return fc.pe_image(fc.rng_for(seed, name), size)


def populate_windows(t: fc.Tree, seed: int, data_mb: int, pagefile_mb: int, hiberfil_mb: int,
                     garbage_mb: int, config: dict[str, bytes], hiberfil_magic: bytes = b"hibr") -> dict[str, str]:
    """Fill ``t`` (a mounted NTFS C:) and return its manifest.

    ``garbage_mb``: how much garbage the deleted files leave in free space; ``config``: name -> bytes of
    the real hives to put in Windows\\System32\\config (the other hives are hive-shaped dummies).
    """

    def R(name: str) -> random.Random:
        return fc.rng_for(seed, name)

    budget = data_mb * MiB
    cfg = "Windows/System32/config"
    for name, data in config.items():
        t.write(f"{cfg}/{name}", data)
    start = t.written  # the hives are on top of data_mb
    for hive, size in (("SOFTWARE", max(256 * KiB, min(budget // 16, 4 * MiB))), ("SAM", 256 * KiB),
                       ("SECURITY", 64 * KiB), ("DEFAULT", 256 * KiB)):
        t.write(f"{cfg}/{hive}", fc.regf_like(R(hive), size))
    if "SYSTEM.LOG1" not in config:  # a log Windows has reset (a real one comes with a dirty SYSTEM)
        t.write(f"{cfg}/SYSTEM.LOG1", bytes(8 * KiB))

    s32 = "Windows/System32"
    for name, size in (("winload.exe", 500 * KiB), ("winload.efi", 600 * KiB), ("winresume.exe", 100 * KiB),
                       ("winresume.efi", 110 * KiB), ("hal.dll", 300 * KiB), ("bootres.dll", 90 * KiB),
                       ("ntoskrnl.exe", max(512 * KiB, min(budget // 12, 5 * MiB)))):
        t.write(f"{s32}/{name}", fc.pe_image(R(name), size))
    for i, drv in enumerate(DRIVERS):
        t.write(f"{s32}/drivers/{drv}.sys", fc.pe_image(R(drv + ".sys"), (20 + 37 * i % 380) * KiB))
    # Sources bcdboot copies the boot files from: same bytes as on System Reserved / the ESP.
    t.write("Windows/Boot/PCAT/bootmgr", boot_image(seed, "bootmgr", 375 * KiB))
    t.write("Windows/Boot/PCAT/memtest.exe", boot_image(seed, "memtest", 470 * KiB))
    t.write("Windows/Boot/EFI/bootmgfw.efi", boot_image(seed, "bootmgfw.efi", 650 * KiB))
    t.write("Windows/Boot/EFI/memtest.efi", boot_image(seed, "memtest.efi", 600 * KiB))

    rem = max(budget - (t.written - start), 4 * MiB)
    rng = R("dlls")
    dll_total, i = 0, 0
    while dll_total < rem * 30 // 100:
        name = f"{rng.choice(DLL_STEMS)}{'' if i < len(DLL_STEMS) else i}.dll"
        size = int(min(max(rng.lognormvariate(11.5, 1.0), 8 * KiB), 3 * MiB))
        rel = f"{s32}/{name}"
        if rel not in t.manifest:
            t.write(rel, fc.pe_image(R(name), size))
            dll_total += size
            if i % SIDE_BY_SIDE_EVERY == 0:
                stem = name[:-4]
                tag = f"{i * 2654435761 % 2**32:08x}"  # WinSxS dirs end in a hash-like hex tag
                sxs = f"amd64_microsoft-windows-{stem}_31bf3856ad364e35_6.1.7601.17514_none_{tag}"
                t.link(rel, f"Windows/winsxs/{sxs}/{name}")
        i += 1

    # Windows compresses some log directories; new files in a compressed directory are compressed.
    t.mkdir("Windows/Logs/CBS")
    t.attrib("Windows/Logs/CBS", fc.ATTR_COMPRESSED)
    t.write("Windows/Logs/CBS/CBS.log", fc.text(R("cbs"), max(64 * KiB, rem * 4 // 100)))
    t.write("Windows/Logs/CBS/CbsPersist_20120304050607.log", fc.text(R("cbsp"), 200 * KiB))
    t.write("Windows/win.ini", b"; for 16-bit app support\r\n[fonts]\r\n[extensions]\r\n[mci extensions]\r\n")

    office = max(256 * KiB, rem * 5 // 100)
    t.write("Program Files/Contoso/Office/office.exe", fc.pe_image(R("office"), office))
    t.write("Program Files/Contoso/Office/templates/normal.dotm", fc.office_zip(R("dotm"), 5))
    t.write("Program Files (x86)/Legacy Tool/tool.exe", fc.pe_image(R("tool"), 300 * KiB))
    for j in range(12):
        t.write(f"ProgramData/Microsoft/Windows/Start Menu/Programs/App {j}.lnk",
                b"L\0\0\0" + fc.random_bytes(R(f"lnk{j}"), 1200))

    home = "Users/Anna"
    docs = f"{home}/Documents"
    drng = R("docs")
    for j in range(10):
        t.write(f"{docs}/letter-{j:02d}.txt", fc.text(R(f"letter{j}"), drng.randint(2, 60) * KiB))
    t.write(f"{docs}/Quarterly report.docx", fc.office_zip(R("report"), 40))
    t.write(f"{docs}/budget 2012.xlsx", fc.office_zip(R("budget"), 15))
    t.write(f"{docs}/Überweisung €.txt", fc.text(R("ueb"), 3000, foreign=True))
    # Notepad's "Unicode": UTF-16LE with a BOM
    t.write(f"{docs}/日本語のメモ.txt", ("\ufeff" + "メモ 日本語\r\n" * 200).encode("utf-16-le"))
    t.write(f"{docs}/Ελληνικά/σημειώσεις.txt", fc.text(R("greek"), 5000, foreign=True))
    t.write(f"{docs}/emoji 😀 notes.txt", fc.text(R("emoji"), 700))
    t.write(f"{docs}/big notes.txt", fc.text(R("bignotes"), rem * 4 // 100))
    prng = R("pics")
    pics_total = 0
    for j in range(200):
        if pics_total >= rem * 10 // 100:
            break
        size = prng.randint(60, 900) * KiB
        t.write(f"{home}/Pictures/Holiday 2011/IMG_{1000 + j}.JPG", fc.jpeg(R(f"img{j}"), size))
        pics_total += size
    video = rem * 20 // 100
    t.write(f"{home}/Videos/holiday.mp4", fc.media(R("video"), video * 2 // 3))
    t.write(f"{home}/Videos/clip.mp4", fc.media(R("clip"), video // 3))
    t.write(f"{home}/Downloads/setup.iso", fc.zero_heavy(R("iso"), rem * 8 // 100))
    t.stream(f"{home}/Downloads/setup.iso", "Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
    t.sparse(f"{home}/AppData/Local/Contoso/cache.db", [(0, fc.random_bytes(R("sp0"), 64 * KiB)),
                                                         (8 * MiB, fc.text(R("sp1"), 64 * KiB))])

    # Many small files: a browser cache and temp files (~4 per MiB of data, at least 100).
    srng = R("small")
    cache = f"{home}/AppData/Local/Microsoft/Windows/Temporary Internet Files/Content.IE5"
    for j in range(min(1500, max(100, 4 * data_mb))):
        size = srng.randint(0, 6000)
        data = fc.text(R(f"s{j}"), size) if j % 2 else fc.random_bytes(R(f"s{j}"), size)
        ext = ("htm", "gif", "js", "css")[j % 4]
        t.write(f"{cache}/{'ABCDEFGH'[j % 8]}{j % 5}X{j % 3}/file{j}[1].{ext}", data)
    deep = "/".join(f"level{d:02d}" for d in range(14))
    t.write(f"{home}/Projects/{deep}/deep.txt", fc.text(R("deep"), 1000))
    t.write(f"{home}/NTUSER.DAT", fc.regf_like(R("ntuser"), 512 * KiB))
    t.attrib(f"{home}/NTUSER.DAT", fc.ATTR_HIDDEN | fc.ATTR_SYSTEM)
    t.write("Users/Default/NTUSER.DAT", fc.regf_like(R("defntuser"), 256 * KiB))
    t.write("Users/Public/Desktop/desktop.ini", "\ufeff[.ShellClassInfo]\r\n".encode("utf-16-le"))

    # Windows 7's compatibility junctions and the "All Users" symlink.
    t.reparse("Documents and Settings", fc.IO_REPARSE_TAG_MOUNT_POINT, "Users")
    t.reparse("ProgramData/Application Data", fc.IO_REPARSE_TAG_MOUNT_POINT, "ProgramData")
    t.reparse("Users/All Users", fc.IO_REPARSE_TAG_SYMLINK, "ProgramData")
    t.write("System Volume Information/tracking.log", fc.random_bytes(R("track"), 20 * KiB))
    t.attrib("System Volume Information", fc.ATTR_HIDDEN | fc.ATTR_SYSTEM)

    page_rng = R("pagefile")
    t.write("pagefile.sys", (page_rng.randbytes(MiB) if k % 3 else bytes(MiB) for k in range(pagefile_mb)))
    hib_rng = R("hiberfil")
    t.write("hiberfil.sys", (hiberfil_magic + hib_rng.randbytes(MiB - len(hiberfil_magic)) if k == 0
                             else hib_rng.randbytes(MiB) for k in range(max(1, hiberfil_mb))))
    for rel in ("pagefile.sys", "hiberfil.sys"):
        t.attrib(rel, fc.ATTR_HIDDEN | fc.ATTR_SYSTEM)
    # Last, so the rest of the tree is laid out contiguously like a fresh install.
    _fill_fragment_delete(t, R("garbage"), garbage_mb, f"{home}/Downloads/fragmented.bin",
                          max(2 * MiB, rem * 3 // 100))
    return t.manifest


def _fill_fragment_delete(
    t: fc.Tree, rng: random.Random, garbage_mb: int, frag_rel: str, frag_size: int
) -> None:
    """Write one file fragmented into many runs, and leave ``garbage_mb`` of garbage in free space.

    ntfs-3g extends a file right after its last cluster, so two files written in turns stay contiguous.
    A *new* file, though, starts at the allocator's moving zone position, just after the last
    allocation: so after each chunk of the file a small new "blocker" file takes the clusters the next
    chunk would have used. Blockers and fillers are deleted at the end; their clusters are free again
    but keep the garbage, like deleted files on a used Windows volume.
    """
    pool = rng.randbytes(4 * MiB)  # garbage need not be unique: slices of one random pool are cheap

    def garbage(size: int) -> bytes:
        off = rng.randrange(0, len(pool) - size)
        return pool[off:off + size]

    doomed: list[str] = []
    h = hashlib.sha256()
    t.mkdir(frag_rel.rpartition("/")[0])
    with (t.root / frag_rel).open("wb") as f:
        for k in range(-(-frag_size // FRAG_CHUNK)):
            chunk = fc.text(rng, FRAG_CHUNK) if k % 2 else rng.randbytes(FRAG_CHUNK)
            f.write(chunk)
            f.flush()  # the chunk must be allocated before the blocker is
            h.update(chunk)
            doomed.append(f"Windows/Temp/~blk{k:05d}.tmp")
            t.write(doomed[-1], garbage(FRAG_BLOCKER))
    t.manifest[frag_rel] = h.hexdigest()
    for k in range(garbage_mb * MiB // FILLER):
        doomed.append(f"Windows/Temp/~wrd{k:05d}.tmp")
        t.write(doomed[-1], garbage(FILLER))
    for rel in doomed:
        t.delete(rel)
