#!/usr/bin/env bash
# vm/run.sh - the VM test tier: the compiled zrb inside an OpenZFS 2.3 guest,
# backing up to the host's S3 (radosgw).
#
#   vm/run.sh                 all scenarios vm/tests/NN-*.sh, in order, on a fresh VM
#   vm/run.sh 04 06           those scenarios plus what they need (their '# needs:' line)
#   vm/run.sh --keep 03       leave the VM running afterwards (vm/zvm.sh ssh ... to look)
#   vm/run.sh --reuse 04      run just 04 on the VM left by --keep (no boot, no deps)
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

T_ALL=$(now)
if [ "$REUSE" = 1 ]; then
  "$ZVM" status >/dev/null || die "--reuse: no VM running (start one with: vm/run.sh --keep NN)"
else
  "$ZVM" build
  curl -s -o /dev/null -m 5 "http://127.0.0.1:$RGW_PORT/" || die "no S3 server answers on 127.0.0.1:$RGW_PORT (ZRB_TEST_RGW_PORT)"
  # the binary rides in as a read-only third disk (/dev/vdc), padded to 512 bytes
  cp "$RUN/zrb" "$RUN/zrb.disk"; truncate -s %512 "$RUN/zrb.disk"
  ZRB_VM_DATA_DISK=$RUN/zrb.disk "$ZVM" boot
fi
[ "$KEEP" = 1 ] || trap '"$ZVM" stop || true' EXIT

vssh() { "$ZVM" ssh "$@"; }

if [ "$REUSE" = 0 ]; then
  BUCKET=zrb-vm-$(date -u +%Y%m%d-%H%M%S)-$RANDOM
  S3_ENDPOINT=http://127.0.0.1:$RGW_PORT s3_make_bucket "$BUCKET" || die "could not create bucket $BUCKET"
  log "bucket $BUCKET created on 127.0.0.1:$RGW_PORT"
fi
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
"$ZVM" scp "$HERE/lib/s3.sh" ":$GUEST_DIR/s3.sh"
for f in "$HERE"/tests/*.sh; do "$ZVM" scp "$f" ":$GUEST_DIR/"; done
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

mkdir -p "$RUN/logs"
declare -A OK=()
PASS=0 FAIL=0
for nn in $ORDER; do
  f=${SEL[$nn]}; name=$(basename "$f" .sh); logf=$RUN/logs/$name.log
  missing=""
  if [ "$REUSE" = 0 ]; then
    for n in $(scenario_needs "$f"); do [ "${OK[$n]:-}" = 1 ] || missing+=" $n"; done
  fi
  if [ -n "$missing" ]; then
    echo "vm: FAIL $name (not run: needs${missing} which did not pass)"; FAIL=$((FAIL + 1)); continue
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
done
echo "vm: $PASS passed, $FAIL failed in $(elapsed "$T_ALL")s${BUCKET:+ (bucket $BUCKET)}"
[ "$KEEP" = 1 ] && echo "vm: VM left running: vm/zvm.sh ssh ..., vm/run.sh --reuse NN, vm/zvm.sh stop"
[ "$FAIL" -eq 0 ]
}
# all of the above is read before main runs: editing this file during a run is safe
main "$@"; exit
