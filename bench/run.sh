#!/bin/sh
# Entry point: build (or reuse) the benchmark disk, then time rescue vs partclone/ntfsclone.
# Usage: bench/run.sh [--size 2G --data 600M] [--keep] [--restore-encrypted]   (as root)
#        bench/run.sh --scale [--size 1T --used 25G,50G,...]   full/incremental/merge of a synthetic disk
#        bench/run.sh --browse [--rounds 2]   files out of rescue mount / extract vs ntfs-3g (bench/browse.py)
#        bench/run.sh --cpu [--size 2G --data 600M] [--baseline DIR]   backup CPU vs its primitives (bench/cpu.py)
#        bench/run.sh --remote [--size 1024] [--backends sftp,s3]   restore from a network folder vs cp (bench/remote.py)
set -e
cd "$(dirname "$0")/.."
# The project's venv when there is one: the bench runs `python -m rescue` with its own interpreter.
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
SCRIPT=bench/bench.py
if [ "${1:-}" = "--scale" ]; then
    shift
    SCRIPT=bench/scale.py
elif [ "${1:-}" = "--browse" ]; then
    shift
    SCRIPT=bench/browse.py
elif [ "${1:-}" = "--cpu" ]; then
    shift
    SCRIPT=bench/cpu.py
elif [ "${1:-}" = "--remote" ]; then
    shift
    SCRIPT=bench/remote.py
fi
PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" "$SCRIPT" "$@"
