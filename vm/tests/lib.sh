# shellcheck shell=bash
# Guest-side helpers for the scenarios vm/tests/NN-*.sh. vm/run.sh copies this
# directory to /root/zrb-tests in the guest with s3.sh and an env file
# (ZRB_BUCKET, S3_ENDPOINT, AWS_*), then runs each scenario there as root.
# A scenario passes when it exits 0 and its last "RESULT: ..." line says what it
# compared; any difference must make it exit non-zero.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$(readlink -f "$0")")"
# shellcheck disable=SC1091
source ./env
# shellcheck disable=SC1091
source ./s3.sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ZRB=/usr/local/bin/zrb
W=/root/zrb                 # state shared by the scenarios of one boot
KEYS=$W/keys
SUMS=$W/sums                # SUMS/<dataset>@<snapshot>.txt: tree manifests
POOL=zrbpool
PREFIX=vm/
TASK=vmtest                 # the main task: POOL/data, config $W/config.yaml
DS=$POOL/data
CONF=$W/config.yaml
CHUNK=4MiB                  # the test chunk size; 01 writes a file larger than it
mkdir -p "$W" "$SUMS"

say()    { echo "[$(date +%T)] $*"; }
fail()   { echo "FAIL: $*" >&2; exit 1; }
result() { echo "RESULT: $*"; }
# run CMD...: log the command, then run it (its failure fails the scenario)
run()    { say "+ $*"; "$@"; }

# write_config FILE BASE_DIR TASK DATASET [CHUNK] [WORKERS]
write_config() {
  local file=$1 base=$2 task=$3 dataset=$4 chunk=${5:-$CHUNK} workers=${6:-2} pub
  pub=$(cat "$KEYS/zrb_public.key" | grep -o 'age1[0-9a-z]*' | head -1)
  [ -n "$pub" ] || fail "no age public key in $KEYS/zrb_public.key"
  cat > "$file" <<YAML
base_dir: $base
age_public_key: $pub
signing_key: $KEYS/zrb_signing.key
chunk_size: $chunk
workers: $workers
s3:
  enabled: true
  bucket: $ZRB_BUCKET
  prefix: $PREFIX
  region: ${AWS_REGION:-us-east-1}
  endpoint: $S3_ENDPOINT
  storage_class:
    manifest: STANDARD
    backup_data: [STANDARD, STANDARD, STANDARD, STANDARD, STANDARD]
  retry:
    max_attempts: 5
tasks:
  - name: $task
    pool: ${dataset%%/*}
    dataset: ${dataset#*/}
    enabled: true
YAML
}

# tree_manifest DIR: every entry's type, mode, mtime, size and link target, then
# the SHA-256 of every regular file; two trees are equal iff these texts are.
tree_manifest() {
  (
    cd "$1"
    find . -mindepth 1 -path ./.zfs -prune -o \( -type d -printf 'd %m %T@ - %P\n' \) -o -printf '%y %m %T@ %s %P %l\n' | LC_ALL=C sort
    find . -path ./.zfs -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  )
}

# compare_files EXPECTED ACTUAL WHAT: fail with a diff if they differ
compare_files() {
  if ! diff -u "$1" "$2" > /tmp/zrb-diff.txt; then
    head -n 60 /tmp/zrb-diff.txt >&2
    fail "$3 differ ($(grep -c '^[-+][^-+]' /tmp/zrb-diff.txt) lines; expected $1, got $2)"
  fi
}

mountpoint_of() { zfs get -H -o value mountpoint "$1"; }

# ensure_mounted DATASET: a received dataset may be left unmounted (zfs receive -u)
ensure_mounted() {
  [ "$(zfs get -H -o value mounted "$1")" = yes ] || run zfs mount "$1"
}

guid_of() { zfs get -H -p -o value guid "$1"; }

# zrb_snapshot CONF TASK LEVEL -> prints the short snapshot name (after '@'),
# after checking that zrb printed it and that it exists with the right prefix
zrb_snapshot() {
  local conf=$1 task=$2 level=$3 out snap ds
  out=$("$ZRB" snapshot --config "$conf" --task "$task" --level "$level") || fail "zrb snapshot --level $level failed"
  snap=$(grep -o "zrb_level${level}_[^[:space:]\"']*" <<<"$out" | tail -1)
  [ -n "$snap" ] || fail "zrb snapshot --level $level printed no zrb_level${level}_ name: $out"
  ds=$(task_dataset "$conf")
  zfs list -H -o name "$ds@$snap" >/dev/null || fail "zrb snapshot printed $snap but $ds@$snap does not exist"
  echo "$snap"
}

task_dataset() { awk '/^ *pool:/{p=$2} /^ *dataset:/{d=$2} END{print p "/" d}' "$1"; }

# record DATASET SNAP: save the tree manifest of the live dataset for DATASET@SNAP
record() {
  tree_manifest "$(mountpoint_of "$1")" > "$SUMS/${1//\//_}@$2.txt"
  echo "$2 $(guid_of "$1@$2")" >> "$SUMS/${1//\//_}.snaps"
}
sums_of() { echo "$SUMS/${1//\//_}@$2.txt"; }
snaps_of() { cat "$SUMS/${1//\//_}.snaps"; }          # "SNAP GUID" in creation order

# list_json CONF TASK -> the JSON array zrb list prints
list_json() {
  local out
  out=$("$ZRB" list --config "$1" --task "$2" --json) || fail "zrb list --json failed"
  jq -e 'type == "array"' <<<"$out" >/dev/null || fail "zrb list --json did not print a JSON array: $out"
  echo "$out"
}

# backup_entry JSON LEVEL SNAP -> the list entry for that backup (fails if absent)
backup_entry() {
  local e
  e=$(jq -c --argjson l "$2" --arg s "$3" '[.[] | select((.level|tonumber) == $l and ((.snapshot|tostring) | endswith($s)))] | last // empty' <<<"$1")
  [ -n "$e" ] || fail "zrb list has no level-$2 backup of $3; it lists: $(jq -c '[.[] | {level, snapshot}]' <<<"$1")"
  echo "$e"
}
parts_of() { jq -r '.parts | if type == "array" then length else . end' <<<"$1"; }

# job_result: the result of a backup/restore/verify --json run (JSON lines) on stdin — the
# final "done" event's result; fails when the events do not end with exactly one "done"
job_result() {
  local out; out=$(cat)
  jq -se 'length > 0 and ([.[] | select(.event == "done" or .event == "error")] | length == 1) and .[-1].event == "done"' <<<"$out" >/dev/null \
    || fail "--json did not end with one done event: $out"
  jq -sc '.[-1].result' <<<"$out"
}

# data_keys DATASET [LEVEL [BACKUP_ID]] -> "KEY SIZE" of the parts in the bucket
data_keys() { s3_keys "$ZRB_BUCKET" "${PREFIX}data/$1/${2:+level$2/}${3:+$3/}"; }
manifest_keys() { s3_keys "$ZRB_BUCKET" "${PREFIX}manifests/$1/"; }
