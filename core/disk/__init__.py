"""The machine's disks: opening sources and targets safely, what the kernel says about them, and discovery."""
