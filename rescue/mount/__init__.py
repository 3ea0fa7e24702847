"""Browsing an image: a read-only FUSE filesystem over `core.engine.view.DiskView`, with each partition's
filesystem mounted on top (ntfs-3g for NTFS, fusefat for FAT), and safe single-file extraction.

Layout of a mount at MOUNTPOINT (the FUSE filesystem itself is mounted there):

    MOUNTPOINT/pN          the browsable filesystem of partition N (a directory with ntfs-3g/fusefat on it),
                           or partition N's raw bytes as a file when it cannot be browsed
    MOUNTPOINT/.raw/pN     partition N's raw bytes (what the loop devices and fusefat read)
    MOUNTPOINT/.raw/disk   the whole disk
    MOUNTPOINT/.raw/mount.json  who serves the mount (pid, image, log file)

Modules: `layout` (what to expose), `fusefs` (the pyfuse3 filesystem), `system` (loop devices,
waiting for drivers, unmounting, over `core.platform`), `stack` (setting up and tearing down the whole
stack), `server` (the serving process, foreground or daemon), `extract` (copying out without ever
writing outside the target).
"""
