"""Low-level I/O helpers: readers over disks and files, atomic file replacement."""
