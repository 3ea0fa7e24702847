#!/usr/bin/env bash
# Set everything up (Debian packages, .venv) and run the whole test suite. Run as root: the tests
# build real disks with loop devices, ntfs-3g and FUSE. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Test disks and backup folders go to a disk-backed folder: /tmp is a RAM filesystem on some systems,
# where the tests would fill memory and `rescue backup` rightly refuses a folder (it would not survive).
export TMPDIR="${TMPDIR:-/var/tmp}"
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
