#!/usr/bin/env bash
# 07-compressed: a compressible dataset (compression=lz4) is sent compressed
# (zfs send -c): the stored parts are far smaller than the logical data and than
# an uncompressed send, and the restore equals the source.
# needs: 01
source ./lib.sh

CDS=$POOL/comp
conf=$W/config-comp.yaml
ctask=vmcomp
run zfs create -o compression=lz4 "$CDS"
CM=$(mountpoint_of "$CDS")
seq 1 3000000 > "$CM/numbers.txt"
# (process substitution: under pipefail, 'yes | head' fails with SIGPIPE)
head -c $((16 * 1024 * 1024)) < <(yes 'zrb compressed send test line') > "$CM/repeated.txt"
head -c 300000 /dev/urandom > "$CM/random.bin"
sync
rm -rf /var/lib/zrb-comp
write_config "$conf" /var/lib/zrb-comp "$ctask" "$CDS"
snap=$(zrb_snapshot "$conf" "$ctask" 0); record "$CDS" "$snap"
run "$ZRB" backup --config "$conf" --task "$ctask" --level 0
entry=$(backup_entry "$(list_json "$conf" "$ctask")" 0 "$snap")
id=$(jq -r '.backupId' <<<"$entry")
stored=$(data_keys "$CDS" 0 "$id" | awk '{s += $2} END {print s + 0}')
logical=$(zfs get -H -p -o value logicalreferenced "$CDS@$snap")
plain=$(zfs send -n -P "$CDS@$snap" | awk '$1 == "size" {print $2}')
comp=$(zfs send -n -P -c "$CDS@$snap" | awk '$1 == "size" {print $2}')
say "logical $logical, send estimate $plain, compressed send estimate $comp, stored in the bucket $stored"
[ "$stored" -gt 0 ] || fail "no part objects for backup $id"
[ "$stored" -lt $(( plain / 2 )) ] || fail "stored $stored bytes for a stream whose uncompressed send is $plain: the send was not compressed (zfs send -c)"

rm -rf /var/lib/zrb-comp-restore
write_config "$W/config-comp-restore.yaml" /var/lib/zrb-comp-restore "$ctask" "$CDS"
run "$ZRB" restore --config "$W/config-comp-restore.yaml" --task "$ctask" --target "$POOL/comp_restored" --private-key "$KEYS/zrb_private.key"
ensure_mounted "$POOL/comp_restored"
tree_manifest "$(mountpoint_of "$POOL/comp_restored")" > /tmp/comp-restored.txt
compare_files "$(sums_of "$CDS" "$snap")" /tmp/comp-restored.txt "files of $POOL/comp_restored and $CDS@$snap"
[ "$(guid_of "$POOL/comp_restored@$snap")" = "$(guid_of "$CDS@$snap")" ] || fail "guid of the restored snapshot differs"

result "compressed send: $stored bytes stored vs $plain uncompressed send estimate ($logical logical); restore equal to $CDS@$snap (sha256 + guid)"
