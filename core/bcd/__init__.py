"""The Boot Configuration Data store (a regf hive) and the SYSTEM hive's MountedDevices.

`elements` names element and object types, `device` encodes/decodes device elements byte-exactly,
`store` exposes objects/elements over a hive and rewrites partition identities after a restore,
`mounteddevices` does the same for drive letters (BOOT.md §8 and §10.2).
"""
