#!/usr/bin/env bash
# vm/run.sh - the VM test tier: the compiled zrb inside an OpenZFS 2.3 guest,
# backing up to the host's S3 (radosgw).
#
#   vm/run.sh                 all scenarios vm/tests/NN-*.sh, in order, on a fresh VM
#   vm/run.sh 04 06           those scenarios plus what they need (their '# needs:' line)
#   vm/run.sh --keep 03       leave the VM running afterwards (vm/zvm.sh ssh ... to look)
#   vm/run.sh --reuse 04      run just 04 on the VM left by --keep (no boot, no deps)
#
# A scenario with a '# boot: systemd' line runs on a second VM booted with systemd as
# PID 1 (ZRB_VM_INIT=systemd), after the others and after their VM is stopped; the
# rest share one fast zvm-init boot.
#
# Prints one line per scenario: "vm: PASS NN-name (what it compared) [secs]" or
# "vm: FAIL NN-name (...)" followed by the tail of its log; exits 1 if any failed.
# Logs: $ZRB_VM_RUN/logs/ (default /var/cache/zrb-vm/run/logs).
#
# Environment: ZRB_BIN (default dist/zrb-linux-x64), ZRB_TEST_RGW_PORT (7480),
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default TESTKEY / TESTSECRET),
# ZRB_VM_SCENARIO_TIMEOUT (seconds per scenario, default 1200), and those of vm/zvm.sh.
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/s3.sh
source "$HERE/lib/s3.sh"
REPO=$(cd "$HERE/.." && pwd)
ZVM=$HERE/zvm.sh
RUN=${ZRB_VM_RUN:-${ZRB_VM_CACHE:-/var/cache/zrb-vm}/run}
BIN=${ZRB_BIN:-$REPO/dist/zrb-linux-x64}
RGW_PORT=${ZRB_TEST_RGW_PORT:-7480}
SCENARIO_TIMEOUT=${ZRB_VM_SCENARIO_TIMEOUT:-1200}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-TESTKEY} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-TESTSECRET}
export AWS_REGION=${AWS_REGION:-us-east-1}
GUEST_DIR=/root/zrb-tests

vssh() { "$ZVM" ssh "$@"; }

# ship_guest: the binary (from the data disk, or scp with --reuse), the scenarios, the
# S3 env, and what a NAS owner would download next to the binary (SHA256SUMS) and read
# (docs/install-nas.md, which the systemd scenario follows command by command)
ship_guest() {
  local t size sum
  t=$(now)
  vssh "mkdir -p $GUEST_DIR /usr/local/bin"
  size=$(stat -c %s "$RUN/zrb"); sum=$(sha256sum "$RUN/zrb" | cut -d' ' -f1)
  if [ "$REUSE" = 1 ]; then
    "$ZVM" scp "$RUN/zrb" :/usr/local/bin/zrb
  else
    vssh "head -c $size /dev/vdc > /usr/local/bin/zrb"
  fi
  vssh 'chmod 755 /usr/local/bin/zrb'
  [ "$(vssh 'sha256sum /usr/local/bin/zrb' | cut -d' ' -f1)" = "$sum" ] || die "the zrb binary in the guest differs from $RUN/zrb (sha256)"
  # one ssh connection for all the small files (each one costs ~1.5 s under TCG)
  echo "$sum  zrb-linux-x64" > "$RUN/SHA256SUMS"
  tar -c --transform 's#.*/##' -f - "$HERE/lib/s3.sh" "$REPO/docs/install-nas.md" "$RUN/SHA256SUMS" "$HERE"/tests/*.sh 2>/dev/null \
    | vssh "tar -x -C $GUEST_DIR -f -" || die "could not copy the scenarios into the guest"
  if [ "$REUSE" = 0 ]; then
    vssh "cat > $GUEST_DIR/env" <<ENV
export ZRB_BUCKET=$BUCKET
export S3_ENDPOINT=http://10.0.2.100:80
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_REGION=$AWS_REGION
ENV
  fi
  log "zrb binary and scenarios copied into the guest in $(elapsed "$t")s ($(vssh '/usr/local/bin/zrb --version' 2>&1 | head -1 || echo 'zrb --version failed'))"
}

# run_scenario NN: run it in the guest, print its PASS/FAIL line, count it
run_scenario() {
  local nn=$1 f name logf missing n t rc secs what why
  f=${SEL[$nn]}; name=$(basename "$f" .sh); logf=$RUN/logs/$name.log
  missing=""
  if [ "$REUSE" = 0 ]; then
    for n in $(scenario_needs "$f"); do [ "${OK[$n]:-}" = 1 ] || missing+=" $n"; done
  fi
  if [ -n "$missing" ]; then
    echo "vm: FAIL $name (not run: needs${missing} which did not pass)"; FAIL=$((FAIL + 1)); return 0
  fi
  t=$(now); rc=0
  timeout -k 10 "$SCENARIO_TIMEOUT" "$ZVM" ssh "cd $GUEST_DIR && bash ./$name.sh" >"$logf" 2>&1 || rc=$?
  secs=$(elapsed "$t")
  what=$(sed -n 's/^RESULT: //p' "$logf" | tail -1)
  if [ "$rc" -eq 0 ] && [ -n "$what" ]; then
    echo "vm: PASS $name ($what) [${secs}s]"; OK[$nn]=1; PASS=$((PASS + 1))
  else
    why="exit $rc"; [ "$rc" -eq 124 ] && why="timed out after ${SCENARIO_TIMEOUT}s"
    [ "$rc" -eq 0 ] && why="exit 0 but no RESULT line"
    echo "vm: FAIL $name ($why; ${what:-nothing compared}) [${secs}s]"
    tail -n 25 "$logf" | sed 's/^/    | /'
    echo "    full log: $logf"
    FAIL=$((FAIL + 1))
  fi
}

main() {
KEEP=0 REUSE=0 WANT=()
for a in "$@"; do
  case $a in
    --keep) KEEP=1 ;;
    --reuse) REUSE=1; KEEP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//'; exit 0 ;;
    [0-9][0-9]) WANT+=("$a") ;;
    *) die "unknown argument '$a' (usage: vm/run.sh [--keep|--reuse] [NN ...])" ;;
  esac
done

scenario_file() { local f; f=$(ls "$HERE"/tests/"$1"-*.sh 2>/dev/null | head -1); [ -n "$f" ] || die "no scenario vm/tests/$1-*.sh"; echo "$f"; }
scenario_needs() { sed -n 's/^# needs:[[:space:]]*//p' "$1" | head -1; }
# '# boot: systemd' runs a scenario on a VM booted with systemd as PID 1; default zvm-init
scenario_boot() { local b; b=$(sed -n 's/^# boot:[[:space:]]*//p' "$1" | head -1); echo "${b:-zvm}"; }

# the scenarios to run, with the ones they need, in NN order
declare -A SEL=()
add_with_needs() {
  local nn=$1 f n
  [ -n "${SEL[$nn]:-}" ] && return 0
  f=$(scenario_file "$nn"); SEL[$nn]=$f
  [ "$REUSE" = 1 ] && return 0
  for n in $(scenario_needs "$f"); do add_with_needs "$n"; done
}
if [ ${#WANT[@]} -eq 0 ]; then
  for f in "$HERE"/tests/[0-9][0-9]-*.sh; do SEL[$(basename "$f" | cut -c1-2)]=$f; done
else
  for nn in "${WANT[@]}"; do add_with_needs "$nn"; done
fi
ORDER=$(printf '%s\n' "${!SEL[@]}" | sort)

[ -x "$BIN" ] || die "no zrb binary at $BIN: build it first with 'bun run build.ts' (or set ZRB_BIN)"
need_cmds curl ssh scp timeout
# test a copy: a rebuild of dist/ while the tier runs must not pull the file away
mkdir -p "$RUN"
cp "$BIN" "$RUN/zrb.tmp" || die "cannot copy $BIN (being rebuilt?)"
mv "$RUN/zrb.tmp" "$RUN/zrb"; chmod 755 "$RUN/zrb"
"$RUN/zrb" --version >/dev/null || die "$BIN does not run on the host ('zrb --version' failed)"
log "testing $("$RUN/zrb" --version | head -1) from $BIN (sha256 $(sha256sum "$RUN/zrb" | cut -c1-16))"

# one boot per PID 1 mode, the fast zvm-init first; a '# needs:' must share its boot
# (each boot starts from the pristine image with a fresh pool disk)
declare -A MODE_OF=()
for nn in $ORDER; do
  MODE_OF[$nn]=$(scenario_boot "${SEL[$nn]}")
  case ${MODE_OF[$nn]} in zvm|systemd) ;; *) die "$(basename "${SEL[$nn]}"): '# boot: ${MODE_OF[$nn]}' is not zvm or systemd" ;; esac
done
for nn in $ORDER; do
  for n in $(scenario_needs "${SEL[$nn]}"); do
    [ -z "${SEL[$n]:-}" ] || [ "${MODE_OF[$n]}" = "${MODE_OF[$nn]}" ] \
      || die "$(basename "${SEL[$nn]}") (boot: ${MODE_OF[$nn]}) needs $n (boot: ${MODE_OF[$n]}): a scenario can only need scenarios of its own boot"
  done
done
MODES=""
for m in zvm systemd; do for nn in $ORDER; do [ "${MODE_OF[$nn]}" = "$m" ] && { MODES+=" $m"; break; }; done; done

T_ALL=$(now)
if [ "$REUSE" = 1 ]; then
  "$ZVM" status >/dev/null || die "--reuse: no VM running (start one with: vm/run.sh --keep NN)"
else
  "$ZVM" build
  curl -s -o /dev/null -m 5 "http://127.0.0.1:$RGW_PORT/" || die "no S3 server answers on 127.0.0.1:$RGW_PORT (ZRB_TEST_RGW_PORT)"
  # the binary rides in as a read-only third disk (/dev/vdc), padded to 512 bytes
  cp "$RUN/zrb" "$RUN/zrb.disk"; truncate -s %512 "$RUN/zrb.disk"
  BUCKET=zrb-vm-$(date -u +%Y%m%d-%H%M%S)-$RANDOM
  S3_ENDPOINT=http://127.0.0.1:$RGW_PORT s3_make_bucket "$BUCKET" || die "could not create bucket $BUCKET"
  log "bucket $BUCKET created on 127.0.0.1:$RGW_PORT"
  [ "$KEEP" = 1 ] || trap '"$ZVM" stop || true' EXIT
fi

mkdir -p "$RUN/logs"
declare -A OK=()
PASS=0 FAIL=0 BOOTED=0
for mode in $MODES; do
  if [ "$REUSE" = 1 ]; then
    running=$(cat "$RUN/init" 2>/dev/null || echo zvm)
    if [ "$running" != "$mode" ]; then
      for nn in $ORDER; do [ "${MODE_OF[$nn]}" = "$mode" ] || continue
        echo "vm: FAIL $(basename "${SEL[$nn]}" .sh) (not run: needs a '$mode' boot, the running VM booted with '$running' init)"; FAIL=$((FAIL + 1))
      done
      continue
    fi
  else
    [ "$BOOTED" = 1 ] && "$ZVM" stop
    BOOTED=1
    if ! ZRB_VM_INIT=$mode ZRB_VM_DATA_DISK=$RUN/zrb.disk "$ZVM" boot; then
      for nn in $ORDER; do [ "${MODE_OF[$nn]}" = "$mode" ] || continue
        echo "vm: FAIL $(basename "${SEL[$nn]}" .sh) (not run: the $mode boot failed, see above)"; FAIL=$((FAIL + 1))
      done
      continue
    fi
  fi
  ship_guest
  for nn in $ORDER; do [ "${MODE_OF[$nn]}" = "$mode" ] && run_scenario "$nn"; done
done
if [ -n "${BUCKET:-}" ] && [ "$FAIL" -eq 0 ] && [ "$KEEP" != 1 ]; then
  S3_ENDPOINT=http://127.0.0.1:$RGW_PORT s3_delete_bucket "$BUCKET" && log "bucket $BUCKET deleted" || log "could not delete bucket $BUCKET (left on 127.0.0.1:$RGW_PORT)"
fi
echo "vm: $PASS passed, $FAIL failed in $(elapsed "$T_ALL")s${BUCKET:+ (bucket $BUCKET$([ "$FAIL" -eq 0 ] && [ "$KEEP" != 1 ] || echo ", kept for a look"))}"
[ "$KEEP" = 1 ] && echo "vm: VM left running: vm/zvm.sh ssh ..., vm/run.sh --reuse NN, vm/zvm.sh stop"
[ "$FAIL" -eq 0 ]
}
# all of the above is read before main runs: editing this file during a run is safe
main "$@"; exit
