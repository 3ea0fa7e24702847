"""The Windows disk backend: raw disks through ``\\\\.\\PhysicalDriveN``, with ctypes only (no pywin32).

What the engine asks of a disk on Linux (`core.disk.device`) it gets here from Win32:

- `c_win`: every IOCTL request and reply as a declared struct (packed as Windows packs them on x64,
  padding named), the control codes, flags and error numbers;
- `seam`: the one object through which every kernel32 call goes (`Win32`), the real ctypes binding,
  and `install` so that a test substitutes a fake that enforces Windows' rules;
- `query`: what a disk handle tells about itself (size, sector sizes, model, serial, bus, layout);
- `volumes`: the volumes of this machine, their letters and mount points, the disks under each, and
  locking + dismounting every volume of a target before it is written;
- `refuse`: the targets refused on Windows (the source, the backup folder's disk, the boot medium,
  the running Windows' disk, a disk with a page file in use);
- `disk`: `WinDisk` (the interface of `core.disk.device.Disk`) and open_source / open_target /
  check_target_path / recheck for device paths;
- `discover`: `list_disks` as `core.disk.discover.DiskSummary` rows;
- `devtree`: the PCI controller a disk hangs off, from the device tree (cfgmgr32), for `rescue adapt`.

`core.disk.device` chooses this backend on Windows, in one place.
"""
