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
#      when the VM image is not cached yet (first run only, ~6-12 min) its build starts in the
#      background before step 2 and step 3 waits for it
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

# The VM tier runs last, but a first run on a fresh machine has to build its image (~6-12 min):
# that build starts now, in the background (output to its log only), so it overlaps bun test
# instead of adding to it; step 3 waits for it.
VM_TIER=0
[ -f "$ROOT/vm/run.sh" ] && [ "${ZRB_SKIP_VM:-0}" != 1 ] && (($# == 0)) && VM_TIER=1
VM_BUILD_PID="" VM_BUILD_T0=0
if ((VM_TIER)) && ! bash "$ROOT/vm/zvm.sh" cached >/dev/null 2>&1; then
  echo "test.sh: building the OpenZFS VM image in the background while bun test runs (first run only, ~6-12 min; cached in ${ZRB_VM_CACHE:-/var/cache/zrb-vm}; log: $LOGDIR/vm-build.log)"
  VM_BUILD_T0=$SECONDS
  rm -f "$LOGDIR/vm-build.seconds"
  (
    t0=$SECONDS
    bash "$ROOT/vm/zvm.sh" build >"$LOGDIR/vm-build.log" 2>&1 </dev/null
    rc=$?
    echo $((SECONDS - t0)) >"$LOGDIR/vm-build.seconds"
    exit $rc
  ) &
  VM_BUILD_PID=$!
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

# 3. VM scenarios (real OpenZFS in qemu)
vm_image() { # build the VM image unless it is cached (or wait for the build started before bun test); says so and how long it took
  if [ -n "$VM_BUILD_PID" ]; then
    local w0=$SECONDS rc=0 took
    wait "$VM_BUILD_PID" || rc=$?
    took=$(cat "$LOGDIR/vm-build.seconds" 2>/dev/null || echo $((SECONDS - VM_BUILD_T0)))
    if ((rc == 0)); then
      echo "test.sh: OpenZFS VM image built in $(mmss "$took") (alongside bun test; waited $(mmss $((SECONDS - w0))) for it after bun test)"
      return 0
    fi
    tail -n 30 "$LOGDIR/vm-build.log" >&2
    echo "test.sh: FAIL: building the OpenZFS VM image after $(mmss "$took") (log: $LOGDIR/vm-build.log)" >&2
    return 1
  fi
  bash "$ROOT/vm/zvm.sh" cached && return 0
  echo "test.sh: building the OpenZFS VM image (first run only, ~12 min; cached in ${ZRB_VM_CACHE:-/var/cache/zrb-vm})..."
  local t0=$SECONDS
  if bash "$ROOT/vm/zvm.sh" build 2>&1 | tee "$LOGDIR/vm-build.log"; then
    echo "test.sh: OpenZFS VM image built in $(mmss $((SECONDS - t0)))"
  else
    echo "test.sh: FAIL: building the OpenZFS VM image after $(mmss $((SECONDS - t0))) (log: $LOGDIR/vm-build.log)" >&2
    return 1
  fi
}
if ((VM_TIER)); then
  if vm_image; then
    VMLOG="$LOGDIR/vm.log"
    bash "$ROOT/vm/run.sh" 2>&1 | tee "$VMLOG"
    vm_rc=${PIPESTATUS[0]}
    vp=$(grep -cE '^vm: PASS ' "$VMLOG") vf=$(grep -cE '^vm: FAIL ' "$VMLOG")
    passed=$((passed + vp)) failed=$((failed + vf))
    if ((vm_rc != 0 && vf == 0)); then
      echo "test.sh: FAIL: vm/run.sh exited with $vm_rc without a failing scenario" >&2
      failed=$((failed + 1))
    fi
  else
    failed=$((failed + 1))
  fi
elif [ -f "$ROOT/vm/run.sh" ]; then
  echo "test.sh: VM scenarios skipped ($( (($#)) && echo "test filter given" || echo "ZRB_SKIP_VM=1"))"
fi

# 4. summary
summary
