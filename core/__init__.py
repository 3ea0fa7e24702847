"""The imaging engine.

`core` reads disks, writes and reads images, and restores them. It never prints, prompts, reads
`sys.argv` or the environment for policy: everything it needs arrives as arguments, passwords arrive
as bytes, progress leaves through a callback (`core.progress`) that can cancel, and every failure is a
subclass of `core.errors.Error` carrying a stable exit code. The CLI in `rescue/` is the only place
that talks to a person.
"""

__version__ = "0.2.0"
