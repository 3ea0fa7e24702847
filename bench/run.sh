#!/bin/sh
# Entry point: build (or reuse) the benchmark disk, then time rescue vs partclone/ntfsclone.
# Usage: bench/run.sh [--size 2G --data 600M] [--keep] [--restore-encrypted]   (as root)
set -e
cd "$(dirname "$0")/.."
PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" exec python3 bench/bench.py "$@"
