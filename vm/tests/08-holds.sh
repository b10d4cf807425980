#!/usr/bin/env bash
# 08-holds: zrb puts a user hold (zfs hold) on the snapshots the next incremental
# will be based on, so an outside pruner cannot break the chain: `zfs holds` shows
# a zrb tag on the level-0 snapshot (base of the next level 1) and on the newest
# backed-up snapshot (base of the next deeper level), and `zfs destroy` refuses.
# needs: 03
source ./lib.sh

mapfile -t chain < <(snaps_of "$DS")
s0=${chain[0]%% *}; newest=${chain[${#chain[@]} - 1]%% *}
checked=""
for s in "$s0" "$newest"; do
  holds=$(zfs holds -H "$DS@$s") || fail "zfs holds $DS@$s failed"
  say "zfs holds $DS@$s: ${holds:-<none>}"
  tag=$(awk -F'\t' 'tolower($2) ~ /zrb/ {print $2; exit}' <<<"$holds")
  [ -n "$tag" ] || fail "no zrb hold on $DS@$s (zfs holds shows: ${holds:-nothing})"
  if zfs destroy "$DS@$s" 2>/tmp/destroy.err; then fail "zfs destroy $DS@$s succeeded despite the hold '$tag'"; fi
  grep -qi 'busy\|hold' /tmp/destroy.err || fail "zfs destroy $DS@$s failed, but not because of the hold: $(cat /tmp/destroy.err)"
  checked+=" @$s:$tag"
done
result "zrb holds present and blocking zfs destroy on the level-0 base and the newest snapshot:$checked"
