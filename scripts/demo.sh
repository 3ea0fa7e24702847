#!/usr/bin/env bash
# The main job on a built-in sample disk: set everything up, build a sample Windows 7 (MBR) disk with
# real tools, back it up (encrypted, split), verify the image, restore it onto a new blank disk and
# show that every file came back. Run as root (loop devices and ntfs-3g build and read the disks).
#   bash scripts/demo.sh [WORKDIR]        (default /var/tmp/rescue-demo; needs ~2 GB free)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work="${1:-/var/tmp/rescue-demo}"
rm -rf "$work" && mkdir -p "$work"
py=.venv/bin/python
rescue=.venv/bin/rescue
say() { printf '\n==> %s\n' "$*"; }

say "Building a sample Windows 7 disk (System Reserved + C:, a few hundred MB of files) in $work/sample.img"
$py -m tests.factory mbr-demo "$work/sample.img" >/dev/null
echo "correct horse battery staple" > "$work/key.txt"

say "rescue backup $work/sample.img $work/backups --password-file key.txt --split 100M"
$rescue backup "$work/sample.img" "$work/backups" --password-file "$work/key.txt" --split 100M || {
  rc=$?; [ "$rc" -ge 100 ] || exit "$rc"; }   # 100/101: finished with a warning (shown above)
ls -l "$work/backups"

say "rescue list $work/backups"
$rescue list "$work/backups"

say "rescue verify $work/backups"
$rescue verify "$work/backups" --password-file "$work/key.txt"

say "rescue restore onto a new blank disk $work/new-disk.img"
truncate -s "$(stat -c %s "$work/sample.img")" "$work/new-disk.img"
$rescue restore "$work/backups" "$work/new-disk.img" --password-file "$work/key.txt" --yes

say "Comparing every file of every partition through ntfs-3g"
$py - "$work/sample.img" "$work/new-disk.img" <<'PY'
import sys
from tests.ntfs3g import partition_hashes
a, b = partition_hashes(sys.argv[1]), partition_hashes(sys.argv[2])
same = differ = 0
for n, files in a.items():
    for name, h in files.items():
        if b.get(n, {}).get(name) == h:
            same += 1
        elif name in ("pagefile.sys", "hiberfil.sys"):
            print(f"  partition {n}: {name} restored as zeros (its contents are not stored, by design)")
        else:
            differ += 1
            print(f"  partition {n}: {name} DIFFERS")
print(f"{same} files identical in {len(a)} partitions, {differ} different")
sys.exit(1 if differ else 0)
PY
say "Done: the restored disk holds the same files as the original."
