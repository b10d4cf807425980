#!/bin/bash
# The project's test command (`bun run test`).
#
#   1. bring up the rig: zfs-fuse daemon + radosgw (reused when already running)
#   2. bun test over test/ (or over the arguments given, e.g. `bun run test test/unit`)
#   3. the OpenZFS VM scenarios: bash vm/run.sh, unless ZRB_SKIP_VM=1 or arguments were given
#   4. one summary line: "N passed, N failed[, N skipped]"
#
# Exit status is non-zero if anything failed or if no test ran.
# Logs: .cache/test/bun-test.log and .cache/test/vm.log.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUN="$ROOT/node_modules/.bin/bun"
[ -x "$BUN" ] || BUN=$(command -v bun) || { echo "test.sh: bun not found (run test/rig/install-deps.sh)" >&2; exit 1; }
LOGDIR="$ROOT/.cache/test"
mkdir -p "$LOGDIR"

passed=0 failed=0 skipped=0

# Last "<spaces>N <word>" summary line in a log, 0 if none.
count() { # count WORD LOGFILE
  sed 's/\x1b\[[0-9;]*m//g' "$2" | grep -E "^ *[0-9]+ $1\$" | tail -n 1 | grep -oE '[0-9]+' || echo 0
}

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

# 2. bun test
if (($#)); then targets=("$@"); else targets=(./test/); fi
BUNLOG="$LOGDIR/bun-test.log"
# bun 1.4.4 ignores bunfig.toml's [test] timeout, so pass it here (it covers hooks too).
"$BUN" test --timeout "${ZRB_TEST_TIMEOUT_MS:-600000}" "${targets[@]}" 2>&1 | tee "$BUNLOG"
bun_rc=${PIPESTATUS[0]}
bp=$(count pass "$BUNLOG") bf=$(count fail "$BUNLOG") bs=$(count skip "$BUNLOG") bt=$(count todo "$BUNLOG")
passed=$((passed + bp)) failed=$((failed + bf)) skipped=$((skipped + bs + bt))
if ((bun_rc != 0 && bf == 0)); then
  echo "test.sh: FAIL: bun test exited with $bun_rc without a failing test (load error?)" >&2
  failed=$((failed + 1))
fi

# 3. VM scenarios (real OpenZFS in qemu)
if [ -f "$ROOT/vm/run.sh" ] && [ "${ZRB_SKIP_VM:-0}" != 1 ] && (($# == 0)); then
  VMLOG="$LOGDIR/vm.log"
  bash "$ROOT/vm/run.sh" 2>&1 | tee "$VMLOG"
  vm_rc=${PIPESTATUS[0]}
  vp=$(grep -cE '^vm: PASS ' "$VMLOG") vf=$(grep -cE '^vm: FAIL ' "$VMLOG")
  passed=$((passed + vp)) failed=$((failed + vf))
  if ((vm_rc != 0 && vf == 0)); then
    echo "test.sh: FAIL: vm/run.sh exited with $vm_rc without a failing scenario" >&2
    failed=$((failed + 1))
  fi
elif [ -f "$ROOT/vm/run.sh" ]; then
  echo "test.sh: VM scenarios skipped ($( (($#)) && echo "test filter given" || echo "ZRB_SKIP_VM=1"))"
fi

# 4. summary
if ((passed + failed == 0)); then
  echo "test.sh: no test ran" >&2
fi
summary="$passed passed, $failed failed"
((skipped)) && summary+=", $skipped skipped"
echo "$summary"
((failed == 0 && passed > 0))
