#!/usr/bin/env bash
# 18-stores: one task, two stores (issue 25) on OpenZFS 2.3 — "hot" in the run's bucket and
# "cold" in a second bucket on the same S3 server, each with its own chain. Level 0 to both,
# each store's base hold visible in `zfs holds` under its own tag (zrb.hot, zrb.cold); a level 1
# while cold's endpoint refuses connections (hot gets it, exit 6, one summary line per store);
# the next run catches cold up from its own level 0; restore from cold equals the source; a
# new level 0 to hot alone, prune by each store's retention; the old bases stay held by cold
# until cold moves on, then `zfs holds` shows none.
# needs: 01
source ./lib.sh

S=$POOL/stores
SCONF=$W/stores.yaml
DOWN=$W/stores-cold-down.yaml
ST=stores
COLD_BUCKET="${ZRB_BUCKET}-cold"
zfs list -H "$S" >/dev/null 2>&1 && fail "$S already exists: 18 must run on a fresh boot"
run zfs create "$S"
M=$(mountpoint_of "$S")
head -c $((3 * 1024 * 1024)) /dev/urandom > "$M/a.bin"
mkdir -p "$M/d" && seq 1 50000 > "$M/d/numbers.txt"
run s3_make_bucket "$COLD_BUCKET"
trap 's3_delete_bucket "$COLD_BUCKET" || true' EXIT

# write_stores FILE COLD_ENDPOINT
write_stores() {
  local pub
  pub=$(grep -o 'age1[0-9a-z]*' "$KEYS/zrb_public.key" | head -1)
  cat > "$1" <<YAML
base_dir: /var/lib/zrb
age_public_key: $pub
signing_key: $KEYS/zrb_signing.key
chunk_size: 1MiB
workers: 2
stores:
  - name: hot
    s3: {bucket: $ZRB_BUCKET, prefix: vm-stores/, region: ${AWS_REGION:-us-east-1}, endpoint: "$S3_ENDPOINT", request_timeout: 2s, retry: {max_attempts: 2}}
    retention: {keep_last: 1}
  - name: cold
    s3: {bucket: $COLD_BUCKET, prefix: vm/, region: ${AWS_REGION:-us-east-1}, endpoint: "$2", request_timeout: 2s, retry: {max_attempts: 2}}
tasks:
  - name: $ST
    pool: ${S%%/*}
    dataset: ${S#*/}
    enabled: true
    retention: {keep_last: 5}
YAML
}
write_stores "$SCONF" "$S3_ENDPOINT"
write_stores "$DOWN" "http://127.0.0.1:9"

# tags SNAP -> the zfs holds tags on $S@SNAP, sorted, comma-separated
tags() { zfs holds -H "$S@$1" | awk -F'\t' '{print $2}' | LC_ALL=C sort | paste -sd, -; }
# count STORE -> how many backups zrb list shows in that store
count() { "$ZRB" list --config "$SCONF" --task "$ST" --store "$1" --json | jq length; }

s0=$(zrb_snapshot "$SCONF" "$ST" 0)
record "$S" "$s0"
out=$("$ZRB" backup --config "$SCONF" --task "$ST" --level 0 2>&1) || fail "level 0 to both stores failed: $out"
grep -q "store hot: ok" <<<"$out" && grep -q "store cold: ok" <<<"$out" || fail "no ok line per store: $out"
grep -q "one zfs send of $S@$s0 fed stores hot, cold" <<<"$out" || fail "the two stores did not share one zfs send of $S@$s0: $out"
[ "$(tags "$s0")" = "zrb.cold,zrb.hot" ] || fail "holds on $S@$s0 are '$(tags "$s0")', want zrb.cold,zrb.hot"

echo more >> "$M/d/numbers.txt"
s1=$(zrb_snapshot "$SCONF" "$ST" 1)
record "$S" "$s1"
set +e
out=$("$ZRB" backup --config "$DOWN" --task "$ST" --level 1 2>&1); code=$?
set -e
[ "$code" = 6 ] || fail "level 1 with cold down exited $code, want 6: $out"
grep -q "store hot: ok" <<<"$out" && grep -q "store cold: failed (exit 6)" <<<"$out" || fail "summary lines missing: $out"
[ "$(tags "$s1")" = "zrb.hot" ] || fail "holds on $S@$s1 are '$(tags "$s1")' after cold failed, want zrb.hot"
[ "$(count hot)" = 2 ] && [ "$(count cold)" = 1 ] || fail "after cold was down: hot has $(count hot), cold $(count cold) backups; want 2 and 1"

run "$ZRB" backup --config "$SCONF" --task "$ST" --level 1
cold=$("$ZRB" list --config "$SCONF" --task "$ST" --store cold --json)
[ "$(jq -r '.[1].parentBackupId == .[0].backupId' <<<"$cold")" = true ] || fail "cold's level 1 is not based on cold's own level 0: $cold"
[ "$(tags "$s1")" = "zrb.cold,zrb.hot" ] || fail "holds on $S@$s1 are '$(tags "$s1")' after cold caught up"

run "$ZRB" restore --config "$SCONF" --task "$ST" --store cold --target "$POOL/stores-from-cold" --private-key "$KEYS/zrb_private.key"
ensure_mounted "$POOL/stores-from-cold"
tree_manifest "$(mountpoint_of "$POOL/stores-from-cold")" > /tmp/stores-cold.txt
compare_files "$(sums_of "$S" "$s1")" /tmp/stores-cold.txt "files restored from store cold"
[ "$(guid_of "$POOL/stores-from-cold@$s1")" = "$(guid_of "$S@$s1")" ] || fail "restored $s1 from cold has another guid"

s2=$(zrb_snapshot "$SCONF" "$ST" 0)
run "$ZRB" backup --config "$SCONF" --task "$ST" --level 0 --store hot
[ "$(tags "$s0")" = "zrb.cold" ] || fail "after hot moved on, holds on $S@$s0 are '$(tags "$s0")', want zrb.cold"
run "$ZRB" prune --config "$SCONF" --task "$ST"
[ "$(count hot)" = 1 ] && [ "$(count cold)" = 2 ] || fail "after prune: hot has $(count hot), cold $(count cold) backups; want 1 (keep_last 1) and 2 (the task's keep_last 5)"
run "$ZRB" backup --config "$SCONF" --task "$ST" --level 0 --store cold
[ -z "$(tags "$s0")" ] && [ -z "$(tags "$s1")" ] || fail "no store needs $s0/$s1 any more, yet they hold '$(tags "$s0")' / '$(tags "$s1")'"
[ "$(tags "$s2")" = "zrb.cold,zrb.hot" ] || fail "holds on $S@$s2 are '$(tags "$s2")'"
run "$ZRB" status --config "$SCONF" --task "$ST" --max-age 1h

result "two stores: level 0 to both from one zfs send (holds zrb.hot + zrb.cold), level 1 with cold refused (exit 6, hot ok, one line each), cold caught up on its own chain, restore from cold equal to $S@$s1 (files + guid), prune by each store's retention (hot 1, cold 2), old bases released once no store needed them"
