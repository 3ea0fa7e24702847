#!/usr/bin/env bash
# Set everything up (Debian packages, .venv) and run the whole test suite. Run as root: the tests
# build real disks with loop devices, ntfs-3g and FUSE. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
