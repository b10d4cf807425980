#!/usr/bin/env bash
# 13-prune: ten simulated days (ZRB_NOW) of backups of a second dataset — level 0 on day 1,
# level 1 on day 8, level 2 on the others — then `zrb prune` by a retention policy in the
# config (keep_daily 3, keep_weekly 1; local: keep_daily 2). The dry run changes nothing; the
# prune leaves exactly the kept backups and their chains in the bucket (no orphan part), destroys
# exactly the unheld zrb snapshots the local policy gives up — never one with a user hold
# (`zfs holds`), never one zrb did not name — keeps zrb's holds on the heads, and a kept point
# still restores with its files and guid. Then `zrb verify --rotate` passes.
# needs: 01
source ./lib.sh

PDS=$POOL/prune
PCONF=$W/prune.yaml
PTASK=prune
zfs list -H "$PDS" >/dev/null 2>&1 && fail "$PDS already exists: 13 must run on a fresh boot"
run zfs create "$PDS"
M=$(mountpoint_of "$PDS")
rm -rf /var/lib/zrb-prune
write_config "$PCONF" /var/lib/zrb-prune "$PTASK" "$PDS"
cat >> "$PCONF" <<'YAML'
    retention:
      keep_daily: 3
      keep_weekly: 1
      local:
        keep_daily: 2
YAML
run "$ZRB" check --config "$PCONF"

# 2027-03-01 is a Monday: L0 on day 1, L1 on day 8 (the next Monday), L2 on the others.
declare -A ID SNAP
for d in 1 2 3 4 5 6 7 8 9 10; do
  case $d in 1) lvl=0 ;; 8) lvl=1 ;; *) lvl=2 ;; esac
  now=$(printf '2027-03-%02dT02:00:00Z' "$d")
  head -c $((20000 + d * 3000)) /dev/urandom > "$M/day$d.bin"
  [ "$d" -gt 3 ] && rm -f "$M/day$((d - 3)).bin"
  sync
  SNAP[$d]=$(ZRB_NOW=$now zrb_snapshot "$PCONF" "$PTASK" "$lvl")
  record "$PDS" "${SNAP[$d]}"
  out=$(ZRB_NOW=$now "$ZRB" backup --config "$PCONF" --task "$PTASK" --level "$lvl" --json | job_result) || fail "backup of day $d failed"
  ID[$d]=$(jq -r .backupId <<<"$out")
  say "day $d: level $lvl ${SNAP[$d]} -> ${ID[$d]}"
done
# Things prune must leave alone: the user's own snapshots and a user hold on day 2's.
run zfs snapshot "$PDS@keep-me"
run zfs snapshot "$PDS@zrb_level2_by-hand"
run zfs hold keepme "$PDS@${SNAP[2]}"

snaps_now() { zfs list -H -o name -t snapshot -d 1 "$PDS" | LC_ALL=C sort; }
keys_now() { s3_keys "$ZRB_BUCKET" "${PREFIX}data/$PDS/" | cut -d' ' -f1; manifest_keys "$PDS" | cut -d' ' -f1; }
before_snaps=$(snaps_now); before_keys=$(keys_now)
dry=$(ZRB_NOW=2027-03-10T05:00:00Z "$ZRB" prune --config "$PCONF" --task "$PTASK" --dry-run --json | job_result) || fail "prune --dry-run failed"
[ "$(snaps_now)" = "$before_snaps" ] || fail "prune --dry-run changed the snapshots"
[ "$(keys_now)" = "$before_keys" ] || fail "prune --dry-run changed the bucket"
say "dry run: $(jq -c '.summary' <<<"$dry")"

ZRB_NOW=2027-03-10T05:00:00Z run "$ZRB" prune --config "$PCONF" --task "$PTASK"

# The bucket: keep_daily 3 = days 10, 9, 8; keep_weekly 1 = day 10; heads L0 day 1, L1 day 8,
# L2 day 10; day 9's chain is day 8 and day 1. Days 2-7 are gone, manifests and parts.
want=$(for d in 1 8 9 10; do echo "${ID[$d]}"; done | LC_ALL=C sort)
have=$(list_json "$PCONF" "$PTASK" | jq -r '.[].backupId' | LC_ALL=C sort)
[ "$have" = "$want" ] || fail "backups after prune: $(echo $have), want $(echo $want)"
list_json "$PCONF" "$PTASK" | jq -e 'all(.restorable)' >/dev/null || fail "a kept backup is not restorable"
for d in 2 3 4 5 6 7; do
  n=$(s3_keys "$ZRB_BUCKET" "${PREFIX}" | grep -c "${ID[$d]}" || true)
  [ "$n" -eq 0 ] || fail "day $d's backup ${ID[$d]} still has $n object(s) in the bucket"
done
parts=$(list_json "$PCONF" "$PTASK" | jq '[.[].parts] | add')
objs=$(s3_keys "$ZRB_BUCKET" "${PREFIX}data/$PDS/" | grep -c . || true)
[ "$objs" -eq "$parts" ] || fail "the bucket holds $objs part objects for $PDS, the kept manifests list $parts (orphans?)"

# The pool: local keep_daily 2 = days 10, 9; heads (held by zrb) days 1, 8, 10; the user-held
# day 2; the user's own snapshots. Days 3-7 destroyed.
want_snaps=$( (for d in 1 2 8 9 10; do echo "$PDS@${SNAP[$d]}"; done; echo "$PDS@keep-me"; echo "$PDS@zrb_level2_by-hand") | LC_ALL=C sort)
[ "$(snaps_now)" = "$want_snaps" ] || fail "snapshots after prune: $(echo $(snaps_now)), want $(echo $want_snaps)"
for d in 1 8 10; do
  zfs holds -H "$PDS@${SNAP[$d]}" | awk -F'\t' '{print $2}' | grep -qx zrb || fail "zrb's hold on the head $PDS@${SNAP[$d]} is gone"
done
zfs holds -H "$PDS@${SNAP[2]}" | awk -F'\t' '{print $2}' | grep -qx keepme || fail "the user's hold on $PDS@${SNAP[2]} is gone"
run zfs release keepme "$PDS@${SNAP[2]}"

# A kept point restores with its files and guid.
rm -rf /var/lib/zrb-prune-restore
write_config "$W/prune-restore.yaml" /var/lib/zrb-prune-restore "$PTASK" "$PDS"
run "$ZRB" restore --config "$W/prune-restore.yaml" --task "$PTASK" --target "$POOL/prune-restored" --private-key "$KEYS/zrb_private.key" --backup-id "${ID[9]}"
ensure_mounted "$POOL/prune-restored"
tree_manifest "$(mountpoint_of "$POOL/prune-restored")" > /tmp/prune-restored.txt
compare_files "$(sums_of "$PDS" "${SNAP[9]}")" /tmp/prune-restored.txt "files of $POOL/prune-restored and $PDS@${SNAP[9]}"
[ "$(guid_of "$POOL/prune-restored@${SNAP[9]}")" = "$(guid_of "$PDS@${SNAP[9]}")" ] || fail "the restored day-9 snapshot has another guid"

# The next day's backup builds on the kept heads; a rotating verify reads its share and passes.
head -c 5000 /dev/urandom > "$M/day11.bin"
s11=$(ZRB_NOW=2027-03-11T02:00:00Z zrb_snapshot "$PCONF" "$PTASK" 2)
out=$(ZRB_NOW=2027-03-11T02:00:00Z "$ZRB" backup --config "$PCONF" --task "$PTASK" --level 2 --json | job_result) || fail "the day-11 backup after prune failed"
[ "$(jq -r .parentBackupId <<<"$out")" = "${ID[8]}" ] || fail "day 11's level 2 is not based on the kept level 1 ${ID[8]}: $out"
v=$(ZRB_NOW=2027-03-11T06:00:00Z "$ZRB" verify --config "$PCONF" --task "$PTASK" --rotate 7 --json | job_result) || fail "verify --rotate failed: $v"
checked=$(jq '.rotation.checked' <<<"$v")
result "10 days pruned by keep_daily 3 + keep_weekly 1: bucket = days 1, 8, 9, 10 ($objs parts, no orphan); pool lost exactly days 3-7 (user hold, user snapshots and zrb's head holds kept); day 9 restored with files and guid; day 11 builds on the kept L1; verify --rotate 7 read $checked part(s)"
