"""Keep the C allocator's freed memory for reuse during a backup instead of faulting it in again.

A backup allocates several 4 MiB buffers per chunk (read buffer, compressed copy, decompress check,
sealed record), from four threads. With glibc's defaults each thread gets an arena of its own, a
freed 4 MiB block at the top of an arena is handed back to the kernel (trimmed, or madvised away in a
thread's arena) and the next allocation faults the same pages in again, zero-filled: measured on
bench/cpu.py's disk, ~140k minor page faults for 650 MB and a third of the backup's system time.
Fixed thresholds (which also stop glibc from moving them) and one arena keep those blocks for
reuse: ~40k faults, and the peak RSS a few MiB lower, not higher, since four arenas each holding
their own free blocks is what one arena avoids. Allocations of these sizes are a few per chunk, so
the threads sharing one arena do not wait on its lock measurably.

The settings are process-wide and stay for the rest of the process (a tool that goes on after its
backup keeps up to TRIM_THRESHOLD of freed memory instead of returning it). Not glibc (musl, another
OS): nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

# Blocks below this come from the arena (a chunk's buffers are 4 MiB and a little more).
MMAP_THRESHOLD = 8 << 20
# Free memory at the top of the arena kept, not returned: a chunk's worth of buffers, several times.
TRIM_THRESHOLD = 64 << 20
# Grow the arena by this much more than asked, so growing is rare.
TOP_PAD = 16 << 20

_done = False


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for param, value in settings:
        mallopt(param, value)  # 0 on a refused value: the default stays, which is only slower
    return True


def one_arena() -> bool:
    """Every thread allocates from the main arena, whose freed blocks any thread reuses (the mount's
    decode threads: 200-230 MiB of peak RSS with an arena per thread, 125-135 MiB with one, at the
    same speed, bench/browse.py). Must run before the threads start; False when it is not glibc."""
    return _mallopt(((_M_ARENA_MAX, 1),))


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (once per process); False when it is not glibc."""
    global _done
    if _done:
        return True
    _done = _mallopt(((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                      (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    return _done
