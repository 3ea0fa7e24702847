"""Filesystems, read-only: NTFS and FAT declared (`c_ntfs`, `c_fat`) and parsed for the bytes they use."""
