#!/bin/bash
# zfs-fuse daemon for the test rig.
#
#   zfs-fuse.sh up      start the daemon unless one already answers; idempotent
#   zfs-fuse.sh down    destroy test pools (name starts with "zrbt") and stop the
#                       daemon, but only if this script started it
#   zfs-fuse.sh status  exit 0 if the daemon answers `zpool list`
#
# Env: ZRB_TEST_RUN_DIR (default /run/zrb-test) holds the pid file.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

RUN_DIR=${ZRB_TEST_RUN_DIR:-/run/zrb-test}
PIDFILE="$RUN_DIR/zfs-fuse.pid"
WAIT_SECS=${ZRB_TEST_ZFS_WAIT:-30}

die() { echo "zfs-fuse.sh: $*" >&2; exit 1; }

answers() { timeout 10 zpool list >/dev/null 2>&1; }

ensure_fuse_dev() {
  [ -c /dev/fuse ] && return 0
  echo "zfs-fuse.sh: /dev/fuse missing; trying modprobe fuse" >&2
  modprobe fuse 2>/dev/null || true
  if [ ! -c /dev/fuse ]; then
    echo "zfs-fuse.sh: still no /dev/fuse; creating the node (char 10,229)" >&2
    mknod -m 0666 /dev/fuse c 10 229 || die "cannot create /dev/fuse"
  fi
  grep -qw fuse /proc/filesystems || die "/dev/fuse exists but the kernel has no fuse filesystem (modprobe fuse failed)"
}

our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

up() {
  if answers; then return 0; fi
  command -v zfs-fuse >/dev/null || die "zfs-fuse not installed (run test/rig/install-deps.sh)"
  ensure_fuse_dev
  mkdir -p "$RUN_DIR"
  # A daemon that is alive but not answering (still starting, or wedged).
  if pid=$(our_pid); then
    :
  else
    rm -f "$PIDFILE"
    zfs-fuse --pidfile "$PIDFILE" >"$RUN_DIR/zfs-fuse.out" 2>&1 \
      || die "zfs-fuse failed to start: $(tail -n 20 "$RUN_DIR/zfs-fuse.out")"
  fi
  local i
  for ((i = 0; i < WAIT_SECS * 4; i++)); do
    answers && return 0
    sleep 0.25
  done
  echo "zfs-fuse.sh: daemon did not answer 'zpool list' within ${WAIT_SECS}s" >&2
  tail -n 20 "$RUN_DIR/zfs-fuse.out" >&2 2>/dev/null || true
  zpool list >&2 || true
  exit 1
}

down() {
  if answers; then
    local p
    for p in $(zpool list -H -o name 2>/dev/null | grep '^zrbt' || true); do
      zpool destroy -f "$p" || zpool export -f "$p" || echo "zfs-fuse.sh: could not remove pool $p" >&2
    done
  fi
  local pid
  if pid=$(our_pid); then
    kill "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -9 "$pid" 2>/dev/null || true; }
    rm -f "$PIDFILE"
  fi
  return 0
}

status() {
  if answers; then
    echo "zfs-fuse: running$(pid=$(our_pid) && echo " (pid $pid, started by rig)" || echo " (not started by rig)")"
  else
    echo "zfs-fuse: not running"; return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
