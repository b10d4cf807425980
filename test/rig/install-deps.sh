#!/bin/bash
# Install everything the tests need on Debian 12. Idempotent; quiet on success,
# prints the failing step's full output on failure.
#   - apt packages (apt-get update only when something is missing)
#   - node_modules via `npm ci` (only when missing or older than package-lock.json)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

PKGS=(zfs-fuse age b3sum ceph-mon ceph-osd radosgw uuid-runtime curl systemd
  qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd openssh-client)
# npm ships in Debian's own packages; only needed when the box has no npm yet.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

LOG=$(mktemp /tmp/zrb-install-deps.XXXXXX)
trap 'rm -f "$LOG"' EXIT

step() { # step DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install-deps.sh: FAILED: $what" >&2
    echo "----- output" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

missing=()
for p in "${PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "install-deps.sh: need root to install: ${missing[*]}" >&2; exit 1; }
  step "apt-get update" apt-get update
  step "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

cd "$ROOT"
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci" npm ci --no-audit --no-fund
fi
