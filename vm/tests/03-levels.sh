#!/usr/bin/env bash
# 03-levels: four rounds of changes (add, modify in place, append, delete, rename,
# chmod, symlink, directories), each followed by `zrb snapshot` + `zrb backup
# --level N`, N = 1..4 (an incremental chain); tree manifests saved per snapshot.
# needs: 02
source ./lib.sh
M=$(mountpoint_of "$DS")

change() {
  case $1 in
    1) head -c 300000 /dev/urandom > "$M/docs/added-1"
       dd if=/dev/urandom of="$M/bin/big-10m" bs=4096 seek=100 count=3 conv=notrunc status=none
       rm "$M/docs/64k"
       mv "$M/docs/4095" "$M/docs/deep/renamed-4095" ;;
    2) printf 'appended\n' >> "$M/docs/deep/er/numbers.txt"
       mkdir -p "$M/new/dir/tree"; head -c 5000 /dev/urandom > "$M/new/dir/tree/f"
       ln -sfn bin/1m "$M/link-to-64k"
       chmod 600 "$M/bin/1m"
       rmdir "$M/empty-dir" ;;
    3) head -c $((6 * 1024 * 1024)) /dev/urandom > "$M/bin/added-6m"         # another > chunk
       mv "$M/new" "$M/moved"
       : > "$M/one-byte"
       rm "$M/docs/added-1" ;;
    4) truncate -s 1M "$M/bin/big-10m"
       head -c 777 /dev/urandom > "$M/docs/name with spaces ü.txt"
       touch -d '2001-02-03 04:05:06' "$M/empty"
       mkdir "$M/empty-dir-again" ;;
  esac
}

summary=""
for n in 1 2 3 4; do
  change "$n"
  sync
  snap=$(zrb_snapshot "$CONF" "$TASK" "$n")
  say "level $n: snapshot $DS@$snap"
  record "$DS" "$snap"
  run "$ZRB" backup --config "$CONF" --task "$TASK" --level "$n"
  entry=$(backup_entry "$(list_json "$CONF" "$TASK")" "$n" "$snap")
  say "zrb list: $entry"
  id=$(jq -r '.backupId' <<<"$entry"); parts=$(parts_of "$entry")
  nkeys=$(data_keys "$DS" "$n" "$id" | grep -c . || true)
  [ "$nkeys" -eq "$parts" ] || fail "level $n: bucket has $nkeys part objects for backup $id, zrb list says $parts"
  summary+=" L$n=$parts"
done

json=$(list_json "$CONF" "$TASK")
levels=$(jq -r '[.[].level | tonumber] | sort | unique | map(tostring) | join(",")' <<<"$json")
[ "$levels" = "0,1,2,3,4" ] || fail "zrb list shows levels $levels, want 0,1,2,3,4"
result "levels 1-4 backed up after add/modify/delete/rename/chmod/symlink changes; list shows levels $levels; parts per level:$summary = objects in the bucket"
