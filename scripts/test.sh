#!/bin/bash
# The project's test command: `bash scripts/test.sh` (also `bun run test`). Works on a fresh
# clone: nothing needs to be installed or built first.
#
#   0. bootstrap: missing apt packages, node_modules, the arm64 sysroot, and
#      dist/zrb-linux-x64 when it is missing or older than the sources (scripts/bootstrap.sh)
#   1. bring up the rig: zfs-fuse daemon + radosgw (reused when already running)
#   2. bun test over test/ (or over the arguments given, e.g. `bash scripts/test.sh test/unit`);
#      bun's own closing line "Ran N tests across M files" must be there, with M = the number
#      of test files given and N = pass + fail + skip + todo (a test that calls process.exit(0)
#      ends bun early with status 0 and no summary: that is a failure, not a pass)
#   3. the OpenZFS VM scenarios: bash vm/run.sh, unless ZRB_SKIP_VM=1 or arguments were given;
#      they run in the background alongside step 2 (after building the VM image when it is not
#      cached yet, first run only, ~6-12 min); step 3 waits for them and prints their log
#   4. one summary line, always the last: "N passed, N failed[, N skipped]"
#
# Exit status is non-zero if anything failed or if no test ran.
# Logs: .cache/test/bun-test.log, .cache/test/vm-build.log and .cache/test/vm.log.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOGDIR="$ROOT/.cache/test"
mkdir -p "$LOGDIR"

passed=0 failed=0 skipped=0

summary() {
  ((passed + failed == 0)) && echo "test.sh: no test ran" >&2
  local s="$passed passed, $failed failed"
  ((skipped)) && s+=", $skipped skipped"
  echo "$s"
  ((failed == 0 && passed > 0))
}

# mm:ss of a number of seconds
mmss() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

# How many test files bun runs for the targets, counted the way bun 1.4 counts them: a
# directory holds *.test|_test|.spec|_spec + .ts/.tsx/.js/.jsx/.mjs/.cjs/.mts/.cts files,
# outside node_modules and hidden directories; a target that is neither a file nor a
# directory is a filter (the test files under . whose path contains it); what directories
# and filters find is counted once, but every file given by name counts (bun runs it,
# whatever its name, and counts it again if a directory also holds it).
TEST_FILE_RE='[._](test|spec)\.(ts|tsx|js|jsx|mjs|cjs|mts|cts)$'
find_tests() { find "$1" \( -name node_modules -o -name '.?*' \) -prune -o -type f -print | grep -E "$TEST_FILE_RE"; }
count_test_files() {
  local t named=0 scanned
  scanned=$(for t in "$@"; do
    if [ -f "$t" ]; then continue
    elif [ -d "$t" ]; then find_tests "$t"
    else find_tests . | grep -F -- "$t"
    fi
  done | xargs -r realpath | sort -u | wc -l)
  for t in "$@"; do [ -f "$t" ] && named=$((named + 1)); done
  echo $((scanned + named))
}

# bun's closing block, the lines right before its last "Ran N tests across M files.":
# prints "PASS FAIL SKIP TODO N M", or nothing when bun never printed that line.
bun_summary() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
    /^ *[0-9]+ (pass|fail|skip|todo|error)$/ { c[$2] = $1; next }
    /^ *[0-9]+ (expect\(\) calls|snapshots?.*)$/ { next }
    /^Ran [0-9]+ tests? across [0-9]+ files?\./ {
      last = sprintf("%d %d %d %d %d %d", c["pass"], c["fail"], c["skip"], c["todo"], $2, $5); split("", c); next }
    { split("", c) }
    END { if (last != "") print last }'
}

# 0. bootstrap
if ! bash "$ROOT/scripts/bootstrap.sh" test; then
  echo "test.sh: FAIL: bootstrap (installing dependencies or building dist/zrb-linux-x64, see above); no test ran" >&2
  failed=1
  summary
  exit 1
fi
BUN="$ROOT/node_modules/.bin/bun"

# 1. rig
rig_ok=1
for s in zfs-fuse rgw; do
  t0=$SECONDS
  if ! bash "$ROOT/test/rig/$s.sh" up; then
    echo "test.sh: FAIL: rig $s.sh up" >&2
    rig_ok=0
  elif ((SECONDS - t0 > 2)); then
    echo "test.sh: rig $s up in $((SECONDS - t0))s"
  fi
done
((rig_ok)) || failed=$((failed + 1))

# The VM tier runs alongside bun test, not after it (the two took ~17 + ~21 min in a row): a
# background job builds the image when it is not cached yet (first run only, ~6-12 min), then
# runs vm/run.sh; its output goes to its logs only, and step 3 prints them.
VM_TIER=0
[ -f "$ROOT/vm/run.sh" ] && [ "${ZRB_SKIP_VM:-0}" != 1 ] && (($# == 0)) && VM_TIER=1
VM_PID=""
if ((VM_TIER)); then
  rm -f "$LOGDIR/vm-build.seconds" "$LOGDIR/vm.status" "$LOGDIR/vm.log"
  if bash "$ROOT/vm/zvm.sh" cached >/dev/null 2>&1; then
    echo "test.sh: the OpenZFS VM scenarios run in the background alongside bun test (log: $LOGDIR/vm.log)"
  else
    echo "test.sh: building the OpenZFS VM image in the background (first run only, ~6-12 min; cached in ${ZRB_VM_CACHE:-/var/cache/zrb-vm}; log: $LOGDIR/vm-build.log), then its scenarios, alongside bun test"
  fi
  (
    if ! bash "$ROOT/vm/zvm.sh" cached >/dev/null 2>&1; then
      t0=$SECONDS
      bash "$ROOT/vm/zvm.sh" build >"$LOGDIR/vm-build.log" 2>&1 </dev/null
      rc=$?
      echo $((SECONDS - t0)) >"$LOGDIR/vm-build.seconds"
      if ((rc != 0)); then
        echo "build-failed $rc 0" >"$LOGDIR/vm.status"
        exit 1
      fi
    fi
    t1=$SECONDS
    bash "$ROOT/vm/run.sh" >"$LOGDIR/vm.log" 2>&1 </dev/null
    echo "ran $? $((SECONDS - t1))" >"$LOGDIR/vm.status"
  ) &
  VM_PID=$!
fi

# 2. bun test
if (($#)); then targets=("$@"); else targets=(./test/); fi
files=$(count_test_files "${targets[@]}")
BUNLOG="$LOGDIR/bun-test.log"
# bun 1.4.4 ignores bunfig.toml's [test] timeout, so pass it here (it covers hooks too).
"$BUN" test --timeout "${ZRB_TEST_TIMEOUT_MS:-600000}" "${targets[@]}" 2>&1 | tee "$BUNLOG"
bun_rc=${PIPESTATUS[0]}
read -r bp bf bs bt bran bfiles <<<"$(bun_summary "$BUNLOG")"
if [ -z "${bran:-}" ]; then
  echo "test.sh: FAIL: bun test ended (exit $bun_rc) without its closing 'Ran N tests across M files' line: a test file, or code it ran, ended the process early (process.exit?); its results are lost" >&2
  failed=$((failed + 1))
else
  passed=$((passed + bp)) failed=$((failed + bf)) skipped=$((skipped + bs + bt))
  if ((bfiles != files)); then
    echo "test.sh: FAIL: bun ran $bfiles test file(s) but ${targets[*]} hold $files" >&2
    failed=$((failed + 1))
  fi
  if ((bran != bp + bf + bs + bt)); then
    echo "test.sh: FAIL: bun ran $bran tests but counted $bp pass, $bf fail, $bs skip, $bt todo" >&2
    failed=$((failed + 1))
  fi
  if ((bun_rc != 0 && bf == 0)); then
    echo "test.sh: FAIL: bun test exited with $bun_rc without a failing test (load error?)" >&2
    failed=$((failed + 1))
  fi
fi

# 3. VM scenarios (real OpenZFS in qemu), started before bun test
if ((VM_TIER)); then
  w0=$SECONDS
  wait "$VM_PID"
  waited=$((SECONDS - w0))
  vm_state="" vm_rc=1 vm_secs=0
  [ -f "$LOGDIR/vm.status" ] && read -r vm_state vm_rc vm_secs <"$LOGDIR/vm.status"
  if [ -f "$LOGDIR/vm-build.seconds" ]; then
    echo "test.sh: OpenZFS VM image built in $(mmss "$(cat "$LOGDIR/vm-build.seconds")") (in the background)"
  fi
  if [ "$vm_state" = ran ]; then
    cat "$LOGDIR/vm.log"
    echo "test.sh: VM scenarios took $(mmss "$vm_secs") alongside bun test; waited $(mmss "$waited") for them after bun test"
    vp=$(grep -cE '^vm: PASS ' "$LOGDIR/vm.log") vf=$(grep -cE '^vm: FAIL ' "$LOGDIR/vm.log")
    passed=$((passed + vp)) failed=$((failed + vf))
    if ((vm_rc != 0 && vf == 0)); then
      echo "test.sh: FAIL: vm/run.sh exited with $vm_rc without a failing scenario" >&2
      failed=$((failed + 1))
    fi
  elif [ "$vm_state" = build-failed ]; then
    tail -n 30 "$LOGDIR/vm-build.log" >&2
    echo "test.sh: FAIL: building the OpenZFS VM image (log: $LOGDIR/vm-build.log)" >&2
    failed=$((failed + 1))
  else
    [ -f "$LOGDIR/vm.log" ] && tail -n 30 "$LOGDIR/vm.log" >&2
    echo "test.sh: FAIL: the VM scenarios ended without a status (killed?); log: $LOGDIR/vm.log" >&2
    failed=$((failed + 1))
  fi
elif [ -f "$ROOT/vm/run.sh" ]; then
  echo "test.sh: VM scenarios skipped ($( (($#)) && echo "test filter given" || echo "ZRB_SKIP_VM=1"))"
fi

# 4. summary
summary
