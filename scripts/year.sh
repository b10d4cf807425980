#!/usr/bin/env bash
# The simulated year of test/e2e/year.test.ts at full length: 365 days of daily level-2,
# weekly level-1 and monthly level-0 backups, each followed by zrb prune and zrb verify
# --rotate, with kills and S3 faults on the way, on a zfs-fuse pool and a local radosgw; then
# every kept point restored and compared. CI runs the same test over ZRB_YEAR_DAYS (default 45).
#   bash scripts/year.sh            # 365 days
#   bash scripts/year.sh 120        # another length
# Prints "year: N days, K kept points, all restored, 0 orphans, B bytes stored". Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
days=${1:-365}
[[ "$days" =~ ^[0-9]+$ ]] && ((days >= 1)) || { echo "year.sh: the number of days must be a whole number ≥ 1, got '$days'" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "year.sh: run as root (it creates a zfs-fuse pool)" >&2; exit 1; }
bash scripts/bootstrap.sh test
bash test/rig/zfs-fuse.sh up
bash test/rig/rgw.sh up
start=$SECONDS
ZRB_YEAR_DAYS=$days node_modules/.bin/bun test --timeout 86400000 test/e2e/year.test.ts
echo "year.sh: $days days in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
