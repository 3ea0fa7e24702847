"""Entry point of the frozen ``rescue`` binary: the CLI, plus ``rescue -m MODULE ARGS`` for helpers.

The engine starts helper processes as ``sys.executable -m core.io.spillfs ...`` (the FUSE server
behind an NTFS shrink). In a frozen binary ``sys.executable`` is the binary itself, so it must accept
``-m`` like the interpreter does; only modules of our own packages may be run this way.
"""

from __future__ import annotations

import runpy
import sys

ALLOWED_PREFIXES = ("core.", "rescue.")


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "-m" and sys.argv[2].startswith(ALLOWED_PREFIXES):
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    if sys.platform == "win32":
        # Output redirected to a file or pipe (rescue-run.cmd's log) is in the ANSI code page on Windows,
        # which cannot encode the list's tree lines or many file names: the command would die printing.
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        sys.stderr.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    from rescue.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
