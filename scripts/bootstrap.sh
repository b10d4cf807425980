#!/bin/bash
# Make this checkout ready to run; scripts/demo.sh and scripts/test.sh call it first, so a
# fresh clone needs no other command.
#
#   bash scripts/bootstrap.sh [demo|demo-s3|test]     (default: test)
#
#   1. apt packages, node_modules and, for the tests, the arm64 sysroot:
#      test/rig/install-deps.sh PROFILE
#   2. dist/zrb-linux-x64 when it is missing or older than its sources
#      (build.ts --if-stale: the rule in scripts/stale.ts, shared with the test helpers)
#
# Quiet when there is nothing to do; otherwise one line per step that does work. Exits
# non-zero after printing the failing step's output.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bash "$ROOT/test/rig/install-deps.sh" "${1:-test}"
"$ROOT/node_modules/.bin/bun" run "$ROOT/build.ts" --host-only --if-stale \
  || { echo "bootstrap.sh: building dist/zrb-linux-x64 failed (output above)" >&2; exit 1; }
