"""Restoring one image onto many PCs at once: a session server and its clients (FORMAT.md "Multicast sessions").

`server.Session` (run by `rescue serve`) checks the image, serves the control channel (HTTP on one
interface's address), sends the image's volume files once with udp-sender to the clients that joined,
or over HTTP to those that cannot take part, and collects each client's result. `client.receive` (run by
`rescue receive`, which the Linux media's init runs when the kernel command line names a session)
authenticates the manifest against the digest of its session address, picks its target disk by the
session's rule, and restores with the restore engine itself from a read-only FUSE folder
(`streamfs`) whose volume files are fed by the stream: every chunk is authenticated and digest-checked
exactly as in a restore from a folder, so a receiver out of step fails and never writes what it could
not authenticate. The engine never prints: progress goes through `core.progress` callbacks.
"""
