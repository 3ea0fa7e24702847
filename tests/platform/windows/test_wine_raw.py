"""The real ctypes path of the Windows disk backend, under Wine, on a loop device.

The Win32 fake (test_windows_disk.py) proves the backend's logic; this proves that the ctypes binding
itself (core/platform/windows/kernel32.py: argtypes, OVERLAPPED offsets, VirtualAlloc'd buffers) moves
the right bytes to the right place. Wine's ``\\\\.\\PhysicalDriveN`` is a fake that reads nothing, but a
``dosdevices/e::`` link to a block device gives real raw ReadFile/WriteFile on ``\\\\.\\E:`` (its IOCTLs
answer ERROR_NOT_SUPPORTED, so the geometry is given). A Windows CPython (builder/wine.py, the one the
Windows build uses) runs a script that writes and reads through `WinDisk`; the host then reads the loop
device's file; the volume and registry calls are checked against what Wine has (its drive letters are
volumes on no disk). One Wine prefix and one Windows program run (about 7 s).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import ROOT, need_root_tools
from tests.disk.loops import loop
from tests.factory import cache_dir

SCRIPT = r'''
import json, sys
sys.path.insert(0, "P:\\")
from core.errors import TargetWriteError
from core.platform.windows import c_win as c
from core.platform.windows.kernel32 import Kernel32
from core.platform.windows.disk import WinDisk
from core.platform.windows.seam import Win32Error

k = Kernel32()
share = c.FILE_SHARE_READ | c.FILE_SHARE_WRITE
out = {}
h = k.create_file("\\\\.\\E:", c.GENERIC_READ | c.GENERIC_WRITE, share,
                  c.FILE_FLAG_NO_BUFFERING | c.FILE_FLAG_WRITE_THROUGH)
d = WinDisk(path="\\\\.\\E:", number=0, handle=h, api=k, size=int(sys.argv[1]), logical_sector_size=512,
            physical_sector_size=512, read_only=False)
out["sector0"] = d.pread(0, 512).hex()
out["unaligned_read"] = d.pread(5 * 512 + 7, 1000).hex()
out["aligned"] = d.pwrite(1 << 20, bytes(range(256)) * 4096 * 5, verify=True)  # 5 MiB: two pieces
out["unaligned"] = d.pwrite(3 * 512 + 100, b"written under Wine", verify=True)
out["zeroed"] = d.zero_range(7 << 20, 64 << 10)
d.sync()
d.close()
ro = k.create_file("\\\\.\\E:", c.GENERIC_READ, share, c.FILE_FLAG_NO_BUFFERING)
buf = k.virtual_alloc(4096)
try:
    k.write_file(ro, buf, 512, 0)
    out["readonly_write"] = "succeeded"
except Win32Error as e:
    out["readonly_write"] = e.code
k.virtual_free(buf)
k.close_handle(ro)
# the volume and registry calls (Wine lists its drive letters as volumes, on no disk)
from core.platform.windows import refuse, volumes
out["volumes"] = [[v.name, v.paths] for v in volumes.all_volumes(k)]
out["c_volume"] = k.volume_name_for_mount_point("C:\\")
system = k.system_directory()
out["system"] = [system, volumes.of_path(k, system).name]
out["paging"] = refuse.page_file_paths(k)
out["boot"] = k.registry_value(refuse.CONTROL_KEY, "PEBootRamdiskSourceDrive")
print(json.dumps(out))
'''


def test_kernel32_reads_and_writes_a_raw_device_under_wine(tmp_path: Path) -> None:
    need_root_tools("losetup")  # wine64 (not on PATH in Debian): builder.wine finds it or names its package
    from builder import wine

    size = 8 << 20
    image = tmp_path / "disk.img"
    before = random.Random(13).randbytes(size)
    image.write_bytes(before)
    (tmp_path / "probe.py").write_text(SCRIPT)
    python = wine.windows_python(cache_dir() / "rescue-build-work")
    with loop(image) as dev:
        prefix = wine.Prefix(tmp_path / "prefix")
        try:  # the prefix's wineserver is stopped before the loop device is detached
            prefix.map_drive("P", ROOT)
            prefix.map_drive("W", tmp_path)
            prefix.map_drive("Y", python)
            (tmp_path / "prefix" / "dosdevices" / "e::").symlink_to(dev)
            r = prefix.run(["Y:\\python.exe", "W:\\probe.py", str(size)], timeout=300)
        finally:
            prefix.close()
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    after = image.read_bytes()
    assert bytes.fromhex(out["sector0"]) == before[:512]
    assert bytes.fromhex(out["unaligned_read"]) == before[5 * 512 + 7:5 * 512 + 1007]
    assert out["aligned"] == [1 << 20, (1 << 20) + (5 << 20)] and out["unaligned"] == [1636, 1654]
    assert after[1 << 20:6 << 20] == bytes(range(256)) * 4096 * 5
    assert after[1636:1654] == b"written under Wine"
    # the read-modify-write kept the rest of the sectors it touched, and nothing else changed
    assert after[3 * 512:1636] == before[3 * 512:1636] and after[1654:4 * 512] == before[1654:4 * 512]
    assert out["zeroed"] is True and after[7 << 20:(7 << 20) + (64 << 10)] == bytes(64 << 10)
    assert after[:3 * 512] == before[:3 * 512] and after[4 * 512:1 << 20] == before[4 * 512:1 << 20]
    assert after[6 << 20:7 << 20] == before[6 << 20:7 << 20]
    assert after[(7 << 20) + (64 << 10):] == before[(7 << 20) + (64 << 10):]
    assert out["readonly_write"] == 5  # ERROR_ACCESS_DENIED through a GENERIC_READ handle
    assert [out["c_volume"], ["C:\\"]] in out["volumes"]
    assert out["system"] == ["C:\\windows\\system32", out["c_volume"]]
    assert out["paging"] == ["C:\\pagefile.sys"]  # Wine's PagingFiles (a REG_SZ there, REG_MULTI_SZ on Windows)
    assert out["boot"] is None  # not WinPE
