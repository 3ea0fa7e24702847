"""What the machine provides, in one place: running its tools, loop devices, the mount table, processes.

The engine (`core`), the CLI (`rescue`) and the tests reach the operating system only through this
package, so a second implementation (a Windows PE one) plugs in here without touching its users. The
interface speaks in strings, ints and our own error classes; the modules below are the Linux
implementation:

- `tools`: the one runner for external tools (timeout, captured output, failures as our errors);
- `loops`: loop devices over files and byte ranges, with the one attach/detach retry policy;
- `mounts`: the mount table (``/proc/self/mountinfo``), unmounting, the swap areas;
- `drivers`: a filesystem driver (ntfs-3g) mounted in the foreground for a ``with`` block;
- `ntfs`: the folder an NTFS partition's files are under (ntfs-3g's mount on Linux, the volume Windows
  mounted on Windows: `windows.mounted`), the one place that choice is made;
- `process`: whether a process is alive (a zombie is not);
- `network`: the links, addresses, default routes and DNS servers the kernel has (`rescue net`).
"""

from __future__ import annotations

from .drivers import driver_mounted, log_tail
from .loops import attach_loop, detach_loop, loop_device, loops_backed_by
from .mounts import Mount, is_mounted, mounts, swaps, unmount
from .process import pid_alive
from .tools import TOOL_TIMEOUT, ErrorFor, Outcome, attempt, run

__all__ = ["TOOL_TIMEOUT", "ErrorFor", "Mount", "Outcome", "attach_loop", "attempt", "detach_loop",
           "driver_mounted", "is_mounted", "log_tail", "loop_device", "loops_backed_by", "mounts", "pid_alive",
           "run", "swaps", "unmount"]
