#!/bin/bash
# Install what zrb's demo and tests need on Debian 12. Idempotent and quiet when nothing
# is missing; one line before and after each step that does work (with its time); the
# failing step's full output on failure (exit 1).
#
#   install-deps.sh          everything the tests need (scripts/test.sh calls this)
#   install-deps.sh demo     only what scripts/demo.sh needs: zfs-fuse and node_modules
#   install-deps.sh demo-s3  the same plus the Ceph radosgw (scripts/demo.sh --s3)
#   install-deps.sh bench    what `bun run bench` needs (age, b3sum, openssl, GNU time), and for
#                            its --e2e rows zfs-fuse, the radosgw and the aws CLI (Debian's
#                            awscli, only when no `aws` is on PATH)
#
# Steps:
#   - apt packages (apt-get update only when something is missing)
#   - tests only: an arm64 glibc sysroot in $ZRB_ARM64_SYSROOT (default
#     /var/cache/zrb-arm64-sysroot) from Debian's libc6, libgcc-s1, libstdc++6 and libssl3 for
#     arm64, so that qemu-aarch64-static -L <sysroot> runs dist/zrb-linux-arm64 (on OpenSSL's
#     ChaCha20-Poly1305 as on a NAS; made again when this list grows)
#   - node_modules via `npm ci` (only when missing or older than package-lock.json)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${1:-test}
SYSROOT=${ZRB_ARM64_SYSROOT:-/var/cache/zrb-arm64-sysroot}
SYSROOT_DEBS=(libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 libssl3:arm64)

DEMO_PKGS=(zfs-fuse)
RGW_PKGS=(ceph-mon ceph-osd radosgw uuid-runtime curl)
TEST_PKGS=("${DEMO_PKGS[@]}" "${RGW_PKGS[@]}" age b3sum systemd git
  qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd openssh-client qemu-user-static libssl3)
BENCH_PKGS=("${DEMO_PKGS[@]}" "${RGW_PKGS[@]}" age b3sum openssl time)
command -v aws >/dev/null 2>&1 || BENCH_PKGS+=(awscli)
case $PROFILE in
  demo) PKGS=("${DEMO_PKGS[@]}") ;;
  demo-s3) PKGS=("${DEMO_PKGS[@]}" "${RGW_PKGS[@]}") ;;
  test) PKGS=("${TEST_PKGS[@]}") ;;
  bench) PKGS=("${BENCH_PKGS[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$PROFILE' (expected demo, demo-s3, test or bench)" >&2; exit 2 ;;
esac
# npm ships in Debian's own packages; only needed when the box has no npm yet.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

LOG=$(mktemp /tmp/zrb-install-deps.XXXXXX)
WORK=$(mktemp -d /tmp/zrb-install-deps.XXXXXX)
trap 'rm -rf "$LOG" "$WORK"' EXIT
T0=0

say() { echo "install-deps.sh: $*"; }
begin() { say "$*..."; T0=$SECONDS; }
done_in() { say "$* in $((SECONDS - T0)) s"; }

step() { # step DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then
    echo "install-deps.sh: FAILED: $what" >&2
    echo "----- output" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

need_root() { [ "$(id -u)" = 0 ] || { echo "install-deps.sh: need root to $*" >&2; exit 1; }; }

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }

apt_packages() {
  local p missing=()
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  need_root "install: ${missing[*]}"
  begin "installing ${#missing[@]} apt package(s): ${missing[*]} (a fresh machine: a few minutes)"
  step "apt-get update" apt-get update
  step "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
  done_in "apt packages installed"
}

# The arm64 runtime libraries, unpacked (not installed) from Debian's own packages.
make_sysroot() {
  local tmp=$SYSROOT.tmp.$$ deb
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    step "dpkg --add-architecture arm64" dpkg --add-architecture arm64
  fi
  # apt knows arm64 packages only after an update that followed --add-architecture
  apt-cache show "${SYSROOT_DEBS[0]}" >/dev/null 2>&1 || step "apt-get update (arm64 lists)" apt-get update
  step "apt-get download ${SYSROOT_DEBS[*]}" bash -c 'cd "$1" && shift && apt-get download "$@"' _ "$WORK" "${SYSROOT_DEBS[@]}"
  rm -rf "$tmp"; mkdir -p "$tmp"
  for deb in "$WORK"/*.deb; do step "dpkg-deb -x $(basename "$deb")" dpkg-deb -x "$deb" "$tmp"; done
  [ -e "$tmp/lib/ld-linux-aarch64.so.1" ] || [ -e "$tmp/usr/lib/ld-linux-aarch64.so.1" ] \
    || { echo "install-deps.sh: FAILED: no ld-linux-aarch64.so.1 in the unpacked ${SYSROOT_DEBS[*]}" >&2; exit 1; }
  (cd "$WORK" && ls ./*.deb) > "$tmp/.zrb-sysroot"
  rm -rf "$SYSROOT"; mv "$tmp" "$SYSROOT"
}

# The sysroot holds every package of SYSROOT_DEBS (its marker lists the .deb files unpacked).
sysroot_current() {
  local d
  [ -s "$SYSROOT/.zrb-sysroot" ] || return 1
  for d in "${SYSROOT_DEBS[@]}"; do grep -q "^\./${d%%:*}_" "$SYSROOT/.zrb-sysroot" || return 1; done
}

arm64_sysroot() {
  [ "$PROFILE" = test ] || return 0
  sysroot_current && return 0
  need_root "make the arm64 sysroot $SYSROOT"
  mkdir -p "$(dirname "$SYSROOT")"
  exec 9>"$SYSROOT.lock"
  flock -w 600 9 || { echo "install-deps.sh: timed out waiting for $SYSROOT.lock" >&2; exit 1; }
  if ! sysroot_current; then
    begin "unpacking an arm64 glibc sysroot into $SYSROOT"
    make_sysroot
    done_in "arm64 sysroot ready"
  fi
  exec 9>&-
}

node_modules() {
  cd "$ROOT"
  if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    begin "npm ci (node_modules, including the bun runtime)"
    step "npm ci" npm ci --no-audit --no-fund
    done_in "node_modules installed"
  fi
}

apt_packages
arm64_sysroot
node_modules
