#!/usr/bin/env bash
# 17-catalog: the encrypted file catalog on OpenZFS 2.3, where the snapshot is read through
# .zfs/snapshot (no clone) and the changes above level 0 come from `zfs diff`: levels 0, 1, 2 of
# a dataset in which level 1 deletes a file, renames a directory and rewrites a file; the
# catalogs are full / changes / changes and small; `zrb find` (signed manifests, the private
# key) says the deleted file was last seen in the level-0 point, finds the renamed directory's
# files under both names with the right points, the rewritten file in two versions; no clone
# is left; `zrb verify` checks every catalog; the point find names restores with --backup-id
# and holds the file.
# needs: 01
source ./lib.sh

CDS=$POOL/catalog
CCONF=$W/catalog.yaml
CTASK=catalog
zfs list -H "$CDS" >/dev/null 2>&1 && fail "$CDS already exists: 17 must run on a fresh boot"
run zfs create "$CDS"
M=$(mountpoint_of "$CDS")
rm -rf /var/lib/zrb-catalog
write_config "$CCONF" /var/lib/zrb-catalog "$CTASK" "$CDS"
mkdir -p "$M/photos" "$M/old" "$M/docs"
head -c 3000 /dev/urandom > "$M/photos/cat.jpg"
echo woof > "$M/photos/dog.jpg"
echo v1 > "$M/docs/a.txt"
for i in 1 2 3; do echo "$i" > "$M/old/f$i.txt"; done
sync

backup_day() { # LEVEL DAY -> the backup's --json result; its stderr in /tmp/catalog-L$1.log
  local now snap out
  now=$(printf '2027-04-%02dT02:00:00Z' "$2")
  snap=$(ZRB_NOW=$now zrb_snapshot "$CCONF" "$CTASK" "$1")
  out=$(ZRB_NOW=$now "$ZRB" backup --config "$CCONF" --task "$CTASK" --level "$1" --json 2>"/tmp/catalog-L$1.log" | job_result) || fail "level-$1 backup failed: $(tail -3 "/tmp/catalog-L$1.log")"
  echo "$out"
}

b0=$(backup_day 0 1)
ID0=$(jq -r .backupId <<<"$b0")
jq -e '.catalog.kind == "full" and .catalog.entries == 9' <<<"$b0" >/dev/null || fail "level 0's catalog is not a full listing of 9 entries: $(jq -c .catalog <<<"$b0")"
grep -q "through $M/.zfs/snapshot/" /tmp/catalog-L0.log || fail "level 0 did not read its snapshot through .zfs/snapshot: $(grep 'file catalog' /tmp/catalog-L0.log)"

rm "$M/photos/cat.jpg"
mv "$M/old" "$M/renamed"
echo "version two" > "$M/docs/a.txt"
sync
b1=$(backup_day 1 2)
jq -e '.catalog.kind == "changes"' <<<"$b1" >/dev/null || fail "level 1's catalog is not a change list: $(jq -c .catalog <<<"$b1")"
grep -q "from zfs diff" /tmp/catalog-L1.log || fail "level 1 did not take its changes from zfs diff: $(grep 'file catalog' /tmp/catalog-L1.log)"
grep -q "temporary clone" /tmp/catalog-L0.log /tmp/catalog-L1.log && fail "a clone was made although .zfs/snapshot is there"

echo new > "$M/photos/new.jpg"
sync
b2=$(backup_day 2 3)
ID2=$(jq -r .backupId <<<"$b2")
jq -e '.catalog.kind == "changes" and .catalog.bytes < 4096' <<<"$b2" >/dev/null || fail "level 2's catalog: $(jq -c .catalog <<<"$b2")"
zfs list -H -o name -r "$POOL" | grep -q zrb-catalog- && fail "a catalog clone is left on $POOL"

find_json() { "$ZRB" find --config "$CCONF" --task "$CTASK" --private-key "$KEYS/zrb_private.key" --json "$@"; }
f=$(find_json cat.jpg) || fail "zrb find cat.jpg failed"
jq -e --arg id "$ID0" '.searched == 3 and (.matches | length == 1) and .matches[0].path == "photos/cat.jpg" and .matches[0].deleted and .matches[0].lastSeen.backupId == $id and .matches[0].versions[0].size == 3000' <<<"$f" >/dev/null \
  || fail "find cat.jpg: $f"
old=$(find_json 'old/*') || fail "zrb find old/* failed"
jq -e --arg id "$ID0" '(.matches | length == 3) and all(.matches[]; .deleted and .lastSeen.backupId == $id)' <<<"$old" >/dev/null || fail "find old/*: $old"
ren=$(find_json 'renamed/*') || fail "zrb find renamed/* failed"
jq -e --arg id "$ID2" '(.matches | length == 3) and all(.matches[]; (.deleted | not) and .lastSeen.backupId == $id)' <<<"$ren" >/dev/null || fail "find renamed/*: $ren"
a=$(find_json docs/a.txt) || fail "zrb find docs/a.txt failed"
jq -e '[.matches[0].versions[].size] == [12, 3]' <<<"$a" >/dev/null || fail "find docs/a.txt: two versions expected: $a"
text=$("$ZRB" find --config "$CCONF" --task "$CTASK" --private-key "$KEYS/zrb_private.key" '*.jpg')
grep -q "photos/cat.jpg  (deleted since; last seen in $ID0" <<<"$text" || fail "find *.jpg (text): $text"

v=$("$ZRB" verify --config "$CCONF" --task "$CTASK" --private-key "$KEYS/zrb_private.key" --json | job_result) || fail "verify failed"
jq -e '[.backups[].catalog] == ["ok", "ok", "ok"]' <<<"$v" >/dev/null || fail "verify did not check every catalog: $(jq -c '[.backups[] | {backupId, catalog}]' <<<"$v")"

rm -rf /var/lib/zrb-catalog-restore
write_config "$W/catalog-restore.yaml" /var/lib/zrb-catalog-restore "$CTASK" "$CDS"
run "$ZRB" restore --config "$W/catalog-restore.yaml" --task "$CTASK" --target "$POOL/catalog-restored" --private-key "$KEYS/zrb_private.key" --backup-id "$(jq -r '.matches[0].lastSeen.backupId' <<<"$f")"
ensure_mounted "$POOL/catalog-restored"
[ "$(stat -c %s "$(mountpoint_of "$POOL/catalog-restored")/photos/cat.jpg")" = 3000 ] || fail "the point find named does not hold photos/cat.jpg"

result "catalogs L0 full (9, via .zfs/snapshot) / L1 changes (zfs diff) / L2 changes ($(jq .catalog.bytes <<<"$b2") bytes); find: cat.jpg last seen in L0, renamed dir under both names, a.txt in 2 versions; verify checked 3 catalogs; L0 restored with the file"
