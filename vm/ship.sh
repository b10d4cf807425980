#!/usr/bin/env bash
# vm/ship.sh BINARY - `bun run build.ts --ship`: boot the OpenZFS test VM (building the
# cached image if needed), copy BINARY in as /usr/local/bin/zrb, run `zrb --version`
# there next to `zfs version`, and stop the VM. Exit status: 0 only if the binary ran.
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
BIN=${1:?usage: vm/ship.sh BINARY}
[ -x "$BIN" ] || die "no executable at $BIN: build it first with 'bun run build.ts'"
ZVM=$HERE/zvm.sh
"$ZVM" build
"$ZVM" boot
trap '"$ZVM" stop >/dev/null 2>&1 || true' EXIT
"$ZVM" scp "$BIN" :/usr/local/bin/zrb
"$ZVM" ssh 'chmod 755 /usr/local/bin/zrb && zfs version | head -1 && /usr/local/bin/zrb --version'
log "shipped $(basename "$BIN") ($(sha256sum "$BIN" | cut -c1-16)) and ran it in the VM"
