#!/usr/bin/env bash
# zvm.sh - the zrb VM harness: a Debian bookworm guest with OpenZFS 2.3 under qemu (TCG).
#
#   vm/zvm.sh build            build the guest image once and cache it (~15 min cold)
#   vm/zvm.sh cached           exit 0 if the image for the current key is cached, 1 if not
#   vm/zvm.sh boot             boot a throw-away instance of the cached image (~35 s;
#                              ZRB_VM_INIT=systemd boots with systemd as PID 1)
#   vm/zvm.sh ssh [CMD...]     run CMD as root in the guest (stdin is forwarded)
#   vm/zvm.sh scp SRC DST      copy files; prefix guest paths with ':'  (e.g. scp f :/tmp/f)
#   vm/zvm.sh stop             power the guest off, make sure qemu is gone
#   vm/zvm.sh status           image key/cache state and whether an instance runs
#   vm/zvm.sh console          print the serial console log of the instance
#   vm/zvm.sh key              print the image cache key
#
# Environment:
#   ZRB_VM_CACHE        cache root (default /var/cache/zrb-vm); images/<key>/ holds
#                       the artefacts, keyed by a hash of vm/lib/image.sh + vm/guest/*
#   ZRB_VM_RUN          instance dir (default $ZRB_VM_CACHE/run): working copy of the
#                       rootfs, pool disk, console log, pid and port files
#   ZRB_VM_SSH_PORT     loopback port forwarded to guest :22 (default 2222; a free one
#                       is picked if it is taken)
#   ZRB_TEST_RGW_PORT   host port the guest reaches as http://10.0.2.100:80 (default 7480)
#   ZRB_VM_POOL_SIZE    size of the second (pool) disk, /dev/vdb (default 2G)
#   ZRB_VM_DATA_DISK    optional file attached read-only as /dev/vdc (run.sh ships the
#                       zrb binary this way: ~3x faster than scp under TCG)
#   ZRB_VM_ROOT_SIZE    size the guest's root fs is grown to at boot (default 4G, sparse)
#   ZRB_VM_MEM / ZRB_VM_CPUS   guest RAM in MiB (2048) / vCPUs (2)
#   ZRB_VM_BOOT_TIMEOUT seconds to wait for ssh after starting qemu (default 300)
#   ZRB_VM_INIT         the guest's PID 1: zvm (default; vm/guest/zvm-init, the fast
#                       minimal init) or systemd (init=/lib/systemd/systemd, for the
#                       scenarios that run zrb's units; vm/guest/zvm-boot.service
#                       brings up the network and zfs and prints ZVM-READY)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"
# shellcheck source=lib/image.sh
source "$ZVM_ROOT/lib/image.sh"

CACHE=${ZRB_VM_CACHE:-/var/cache/zrb-vm}
RUN=${ZRB_VM_RUN:-$CACHE/run}
RGW_PORT=${ZRB_TEST_RGW_PORT:-7480}
POOL_SIZE=${ZRB_VM_POOL_SIZE:-2G}
MEM=${ZRB_VM_MEM:-2048}
CPUS=${ZRB_VM_CPUS:-2}
BOOT_TIMEOUT=${ZRB_VM_BOOT_TIMEOUT:-300}
ROOT_SIZE=${ZRB_VM_ROOT_SIZE:-4G}
INIT=${ZRB_VM_INIT:-zvm}

image_key() {
  { cat "$ZVM_ROOT/lib/image.sh"; for f in "$ZVM_ROOT"/guest/*; do echo "== ${f##*/}"; cat "$f"; done
    echo "suite=$ZVM_ZFS_SUITE"; } | sha256sum | cut -c1-16
}
KEY=$(image_key)
IMG=$CACHE/images/$KEY

image_ok() { [ -s "$IMG/vmlinuz" ] && [ -s "$IMG/initrd.img" ] && [ -s "$IMG/rt.img.zst" ] && [ -s "$IMG/ssh/id_ed25519" ]; }

cmd_build() {
  need_cmds debootstrap chroot mkfs.ext4 zstd ssh-keygen flock mountpoint
  [ "$(id -u)" -eq 0 ] || die "build needs root (debootstrap, chroot, bind mounts)"
  mkdir -p "$CACHE/images"
  exec 9>"$CACHE/build.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE/build.lock; waiting for it (up to 40 min)"
    flock -w 2400 9 || die "timed out waiting for $CACHE/build.lock"
  fi
  if image_ok; then log "image $KEY is cached in $IMG ($(tr '\n' ' ' < "$IMG/versions.txt"))"; return 0; fi
  local work=$CACHE/build-$KEY.tmp out=$CACHE/images/.$KEY.tmp t0
  t0=$(now)
  # leftovers of an interrupted build: unmount before deleting anything
  [ -d "$work/root" ] && chroot_umount "$work/root"
  rm -rf --one-file-system "$work" "$out"
  mkdir -p "$work" "$out"
  log "building image $KEY (cold build ~15 min on 2 cores; log lines below)"
  build_image "$work" "$out"
  rm -rf --one-file-system "$work"
  rm -rf "$IMG"; mv "$out" "$IMG"
  log "image $KEY built in $(elapsed "$t0")s: $(du -sh "$IMG" | cut -f1) in $IMG ($(tr '\n' ' ' < "$IMG/versions.txt"))"
}

# ---------------------------------------------------------------- instance

qemu_pid() {
  local pid
  [ -s "$RUN/qemu.pid" ] || return 1
  pid=$(cat "$RUN/qemu.pid")
  # the pid file may be stale and its pid reused: check that it is our qemu
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "qemu-system-x86_64.*$RUN/console.log" || return 1
  echo "$pid"
}

port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

pick_port() {
  local want=${ZRB_VM_SSH_PORT:-2222} p
  if port_free "$want"; then echo "$want"; return; fi
  for p in $(seq $((want + 1)) $((want + 200))); do
    if port_free "$p"; then log "ssh port $want is taken, using $p"; echo "$p"; return; fi
  done
  die "no free loopback port in $want..$((want + 200)) for ssh (set ZRB_VM_SSH_PORT)"
}

ssh_opts() {
  [ -s "$RUN/ssh.port" ] && [ -s "$RUN/id_ed25519" ] || die "no VM instance in $RUN (run: vm/zvm.sh boot)"
  SSH_OPTS=(-i "$RUN/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
            -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=5
            -o ServerAliveInterval=15 -o ServerAliveCountMax=8)
  SSH_PORT=$(cat "$RUN/ssh.port")
}

vssh() { ssh_opts; ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" root@127.0.0.1 "$@"; }

console_tail() {
  echo "---- last ${1:-30} lines of the guest console ($RUN/console.log) ----" >&2
  tail -n "${1:-30}" "$RUN/console.log" >&2 2>/dev/null || echo "(no console log)" >&2
  echo "----" >&2
}

working_copy() {
  # the rootfs is decompressed once per image key; qemu -snapshot keeps it pristine
  if [ "$(cat "$RUN/rt.key" 2>/dev/null)" != "$KEY" ] || [ ! -s "$RUN/rt.img" ]; then
    local t; t=$(now)
    rm -f "$RUN/rt.img" "$RUN/rt.key"
    zstd -q -d --sparse "$IMG/rt.img.zst" -o "$RUN/rt.img.tmp" || die "cannot decompress $IMG/rt.img.zst"
    # room for the zrb binary, spill and restore dirs: the image's ext4 is 1 GiB and
    # ~75% full; the file grows sparsely here and the fs online at boot (resize2fs)
    truncate -s "$ROOT_SIZE" "$RUN/rt.img.tmp"
    mv "$RUN/rt.img.tmp" "$RUN/rt.img"; echo "$KEY" > "$RUN/rt.key"
    log "working copy of the rootfs in $RUN/rt.img ($(elapsed "$t")s)"
  fi
  cp "$IMG/vmlinuz" "$IMG/initrd.img" "$RUN/"
  install -m 600 "$IMG/ssh/id_ed25519" "$RUN/id_ed25519"
}

# init_path MODE -> the kernel's init= for a boot mode (ZRB_VM_INIT)
init_path() {
  case $1 in
    zvm) echo /sbin/zvm-init ;;
    systemd) echo /lib/systemd/systemd ;;
    *) die "ZRB_VM_INIT must be zvm or systemd, got '$1'" ;;
  esac
}

cmd_boot() {
  need_cmds qemu-system-x86_64 zstd ssh ss python3
  local init; init=$(init_path "$INIT")
  image_ok || die "no cached image $KEY in $IMG (run: vm/zvm.sh build)"
  local pid; if pid=$(qemu_pid); then die "an instance is already running (qemu pid $pid, $RUN); run: vm/zvm.sh stop"; fi
  mkdir -p "$RUN"
  exec 8>"$RUN/boot.lock"; flock -n 8 || die "another boot is in progress in $RUN"
  working_copy
  rm -f "$RUN/pool.img" "$RUN/console.log" "$RUN/qemu.pid" "$RUN/ssh.port" "$RUN/guestfwd.log" "$RUN/init"
  truncate -s "$POOL_SIZE" "$RUN/pool.img"        # /dev/vdb, fresh for every boot
  local port t0 i fwd
  port=$(pick_port)
  # one relay process per guest connection (see lib/tcp-forward.py for why not -tcp:)
  fwd="python3 $ZVM_ROOT/lib/tcp-forward.py 127.0.0.1 $RGW_PORT $RUN/guestfwd.log"
  case $fwd in *,*) die "paths must not contain ',' (qemu option syntax): $fwd" ;; esac
  curl -s -o /dev/null -m 3 "http://127.0.0.1:$RGW_PORT/" || warn "nothing answers on host 127.0.0.1:$RGW_PORT (the guest's S3 at 10.0.2.100:80)"
  t0=$(now)
  # restrict=on: the guest reaches nothing but the guestfwd (10.0.2.100:80 -> the
  # host's S3). Without it 10.0.2.2:PORT would be any host loopback service.
  qemu-system-x86_64 -name zrb-vm -accel tcg,thread=multi -cpu max -m "$MEM" -smp "$CPUS" -no-reboot \
    -kernel "$RUN/vmlinuz" -initrd "$RUN/initrd.img" \
    -append "root=/dev/vda rw init=$init net.ifnames=0 console=ttyS0 ${ZRB_VM_APPEND:-}" \
    -drive "file=$RUN/rt.img,format=raw,if=virtio,cache=unsafe" \
    -drive "file=$RUN/pool.img,format=raw,if=virtio,cache=unsafe" \
    ${ZRB_VM_DATA_DISK:+-drive "file=$ZRB_VM_DATA_DISK,format=raw,if=virtio,readonly=on"} \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22,guestfwd=tcp:10.0.2.100:80-cmd:$fwd" \
    -device virtio-net-pci,netdev=n0 \
    -display none -monitor none -serial "file:$RUN/console.log" \
    -snapshot -pidfile "$RUN/qemu.pid" -daemonize \
    || die "qemu failed to start (see its message above)"
  echo "$port" > "$RUN/ssh.port"; echo "$INIT" > "$RUN/init"
  log "qemu started (pid $(cat "$RUN/qemu.pid"), PID 1 $init, ssh on 127.0.0.1:$port); waiting up to ${BOOT_TIMEOUT}s for the guest"
  for (( i = 0; i < BOOT_TIMEOUT * 2; i++ )); do
    grep -q ZVM-READY "$RUN/console.log" 2>/dev/null && break
    qemu_pid >/dev/null || { console_tail 40; die "qemu exited during boot"; }
    sleep 0.5
  done
  grep -q ZVM-READY "$RUN/console.log" || { console_tail 40; cmd_stop; die "guest did not print ZVM-READY within ${BOOT_TIMEOUT}s"; }
  grep -q 'zvm-init: ERROR' "$RUN/console.log" && { console_tail 40; cmd_stop; die "guest init reported an error"; }
  for (( i = 0; i < 60; i++ )); do vssh true 2>/dev/null && break; sleep 1; done
  vssh true || { console_tail 40; cmd_stop; die "guest printed ZVM-READY but ssh on port $port does not answer"; }
  vssh 'resize2fs /dev/vda' >/dev/null 2>&1 || warn "could not grow the guest root fs (resize2fs /dev/vda)"
  log "guest ready in $(elapsed "$t0")s ($INIT init): $(vssh 'uname -r; zfs version | head -1' | tr '\n' ' ')"
}

cmd_stop() {
  local pid i
  if ! pid=$(qemu_pid); then log "no instance running in $RUN"; rm -f "$RUN/qemu.pid" "$RUN/ssh.port" "$RUN/init"; return 0; fi
  # power off from inside (flushes nothing we care about: the rootfs is -snapshot)
  timeout 10 "$0" ssh 'sync; echo o > /proc/sysrq-trigger' >/dev/null 2>&1 || true
  for (( i = 0; i < 40; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    warn "guest did not power off within 10 s; sending SIGTERM to qemu $pid"
    kill "$pid" 2>/dev/null || true
    for (( i = 0; i < 20; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { warn "qemu $pid ignored SIGTERM; SIGKILL"; kill -9 "$pid" 2>/dev/null || true; sleep 0.5; }
  fi
  kill -0 "$pid" 2>/dev/null && die "qemu $pid is still running"
  rm -f "$RUN/qemu.pid" "$RUN/ssh.port" "$RUN/pool.img" "$RUN/init"
  log "stopped (qemu $pid gone)"
}

cmd_scp() {
  [ $# -eq 2 ] || die "usage: vm/zvm.sh scp SRC DST   (guest paths start with ':', e.g. scp dist/zrb :/usr/local/bin/zrb)"
  ssh_opts
  local a args=()
  for a in "$@"; do case $a in :*) args+=("root@127.0.0.1$a") ;; *) args+=("$a") ;; esac; done
  scp -q -r "${SSH_OPTS[@]}" -P "$SSH_PORT" "${args[@]}"
}

cmd_status() {
  echo "image key:   $KEY (hash of vm/lib/image.sh + vm/guest/*)"
  if image_ok; then echo "image:       cached in $IMG, $(du -sh "$IMG" | cut -f1); $(tr '\n' ' ' < "$IMG/versions.txt")"
  else echo "image:       NOT BUILT (vm/zvm.sh build)"; fi
  local others; others=$(ls "$CACHE/images" 2>/dev/null | grep -vx "$KEY" | tr '\n' ' ' || true)
  [ -z "$others" ] || echo "stale images: $others(remove with rm -rf $CACHE/images/<key>)"
  local pid; if pid=$(qemu_pid); then echo "instance:    running, qemu pid $pid, ssh 127.0.0.1:$(cat "$RUN/ssh.port" 2>/dev/null), $(cat "$RUN/init" 2>/dev/null || echo '?') init, $RUN"
  else echo "instance:    not running"; return 3; fi
}

main() {
  case "${1:-}" in
    build) cmd_build ;;
    cached) image_ok ;;
    boot) cmd_boot ;;
    ssh) shift; vssh "$@" ;;
    scp) shift; cmd_scp "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    console) cat "$RUN/console.log" ;;
    key) echo "$KEY" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//'; exit 2 ;;
  esac
}
# everything above is only definitions: bash has read the whole file before main
# runs, so editing this script while a build runs cannot derail it
main "$@"; exit
