"""`python -m rescue` runs the CLI (the frozen binary's entry point too)."""

from rescue.cli import main

main()
