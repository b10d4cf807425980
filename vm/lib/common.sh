# shellcheck shell=bash
# Shared helpers for the zrb VM harness (sourced by vm/zvm.sh and vm/run.sh).

ZVM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)   # .../vm

log()  { printf '[%s] zvm: %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[%s] zvm: WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die()  { printf '[%s] zvm: ERROR: %s\n' "$(date +%T)" "$*" >&2; exit 1; }
now()  { date +%s.%N; }
# elapsed START -> seconds with one decimal
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

need_cmds() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || die "missing host command(s): ${missing[*]} (Debian packages: qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd openssh-client util-linux)"
}

# apt_uri_for SUITE -> the URI the host's apt uses for that suite (deb822 *.sources
# or one-line *.list). The repository never names a mirror: it follows the host.
apt_uri_for() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '
      function flush() { if (uri != "" && index(" " suites " ", " " want " ")) { print uri; found = 1; exit } uri = ""; suites = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { $1 = ""; suites = $0 }
      END { if (!found) flush() }' "$f"
  done | head -1 | grep . && return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == want) { print $i; exit } }' "$f"
  done | head -1 | grep .
}
