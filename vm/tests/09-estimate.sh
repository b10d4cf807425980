#!/usr/bin/env bash
# 09-estimate: `zfs send -n -P` dry-run estimates (modern ZFS) against what zrb
# recorded: for each level of the chain from 03, the byte count in zrb list must
# be within 15% (or 64 KiB: estimates of tiny incrementals count whole metadata
# blocks) of the estimate of the same full/incremental send, made with the
# flags zrb uses for an unencrypted dataset on OpenZFS 2.3 (-L -e -c).
# needs: 03
source ./lib.sh

json=$(list_json "$CONF" "$TASK")
mapfile -t chain < <(snaps_of "$DS")
report=""
for n in 0 1 2 3 4; do
  snap=${chain[$n]%% *}
  if [ "$n" -eq 0 ]; then est=$(zfs send -n -P -L -e -c "$DS@$snap" | awk '$1 == "size" {print $2}')
  else est=$(zfs send -n -P -L -e -c -i "@${chain[$((n - 1))]%% *}" "$DS@$snap" | awk '$1 == "size" {print $2}'); fi
  [ -n "$est" ] && [ "$est" -gt 0 ] || fail "zfs send -n -P gave no size for level $n ($DS@$snap)"
  entry=$(backup_entry "$json" "$n" "$snap")
  bytes=$(jq -r '.bytes' <<<"$entry")
  [[ "$bytes" =~ ^[0-9]+$ ]] || fail "zrb list entry for level $n has no numeric 'bytes': $entry"
  diff=$(( bytes > est ? bytes - est : est - bytes ))
  tol=$(( est * 15 / 100 > 65536 ? est * 15 / 100 : 65536 ))
  [ "$diff" -le "$tol" ] || fail "level $n: zrb recorded $bytes bytes, zfs send -n -P -L -e -c estimates $est (off by $diff > $tol)"
  report+=" L$n=$bytes/$est"
done
result "zrb list bytes vs zfs send -n -P estimate (within 15% or 64 KiB):$report"
