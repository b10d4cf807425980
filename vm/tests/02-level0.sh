#!/usr/bin/env bash
# 02-level0: `zrb snapshot --level 0` + `zrb backup --level 0`; the bucket must
# hold a manifest and the parts zrb list reports, each part an age file.
# needs: 01
source ./lib.sh

snap=$(zrb_snapshot "$CONF" "$TASK" 0)
say "snapshot $DS@$snap"
record "$DS" "$snap"
run "$ZRB" backup --config "$CONF" --task "$TASK" --level 0

json=$(list_json "$CONF" "$TASK")
entry=$(backup_entry "$json" 0 "$snap")
say "zrb list: $entry"
parts=$(parts_of "$entry")
id=$(jq -r '.backupId' <<<"$entry")
[ -n "$id" ] && [ "$id" != null ] || fail "list entry has no backupId: $entry"
stream=$(zfs send -n -P "$DS@$snap" | awk '$1 == "size" {print $2}')
[ "$parts" -ge 2 ] || fail "level 0 of a ${stream}-byte stream has $parts part(s); with chunk_size $CHUNK it needs >= 2"

keys=$(data_keys "$DS" 0 "$id")
nkeys=$(grep -c . <<<"$keys" || true)
[ "$nkeys" -eq "$parts" ] || fail "bucket has $nkeys objects under ${PREFIX}data/$DS/level0/$id/ but zrb list says $parts parts:
$keys"
nman=$(manifest_keys "$DS" | grep -c . || true)
[ "$nman" -ge 1 ] || fail "no manifest under ${PREFIX}manifests/$DS/"
first=$(head -1 <<<"$keys" | cut -d' ' -f1)
s3_get "$ZRB_BUCKET" "$first" /tmp/part0
head -c 22 /tmp/part0 | grep -q '^age-encryption.org/v1' || fail "part $first does not start with the age header: $(head -c 40 /tmp/part0 | od -c | head -2)"

result "level 0 of $DS@$snap: list shows backup $id with $parts parts = $nkeys objects in the bucket, $nman manifest object(s), part 0 is an age file"
