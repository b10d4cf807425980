#!/usr/bin/env bash
# 04-restore: from an EMPTY base_dir (a fresh config: what a new machine has),
# restore the whole chain 0..4 into a new dataset and compare every file and
# every snapshot guid with the source; --plan changes nothing; a restore of a
# mid-chain level (--level 2) matches that snapshot.
# needs: 03
source ./lib.sh

conf2=$W/config-restore.yaml
rm -rf /var/lib/zrb-restore
write_config "$conf2" /var/lib/zrb-restore "$TASK" "$DS"
mapfile -t chain < <(snaps_of "$DS")
[ "${#chain[@]}" -eq 5 ] || fail "expected 5 recorded snapshots (levels 0-4), have ${#chain[@]}"
newest=${chain[4]%% *}

# --plan: prints what it would do, creates nothing
run "$ZRB" restore --config "$conf2" --task "$TASK" --target "$POOL/planonly" --private-key "$KEYS/zrb_private.key" --plan
zfs list -H "$POOL/planonly" >/dev/null 2>&1 && fail "restore --plan created $POOL/planonly"

# the whole chain to the newest snapshot (the default)
t=$(date +%s)
run "$ZRB" restore --config "$conf2" --task "$TASK" --target "$POOL/restored" --private-key "$KEYS/zrb_private.key"
say "restore of the chain took $(( $(date +%s) - t ))s"
ensure_mounted "$POOL/restored"
tree_manifest "$(mountpoint_of "$POOL/restored")" > /tmp/restored.txt
compare_files "$(sums_of "$DS" "$newest")" /tmp/restored.txt "files of $POOL/restored and $DS@$newest"
nfiles=$(grep -c '^[0-9a-f]\{64\}  ' /tmp/restored.txt)

# every snapshot of the chain arrived with the source's guid
for line in "${chain[@]}"; do
  snap=${line%% *}; want=${line##* }
  got=$(guid_of "$POOL/restored@$snap" 2>/dev/null) || fail "$POOL/restored@$snap is missing after the chain restore"
  [ "$got" = "$want" ] || fail "guid of $POOL/restored@$snap is $got, source $DS@$snap has $want"
done

# a mid-chain level from the same empty-state config
mid=${chain[2]%% *}
rm -rf /var/lib/zrb-restore
run "$ZRB" restore --config "$conf2" --task "$TASK" --target "$POOL/restored2" --private-key "$KEYS/zrb_private.key" --level 2
ensure_mounted "$POOL/restored2"
tree_manifest "$(mountpoint_of "$POOL/restored2")" > /tmp/restored2.txt
compare_files "$(sums_of "$DS" "$mid")" /tmp/restored2.txt "files of $POOL/restored2 and $DS@$mid"
[ "$(guid_of "$POOL/restored2@$mid")" = "${chain[2]##* }" ] || fail "guid of $POOL/restored2@$mid differs from the source"

result "chain 0-4 restored from an empty base_dir: $nfiles files (sha256, mode, mtime, size) equal to $DS@$newest, 5/5 snapshot guids equal; --level 2 restore equal to $DS@$mid; --plan created nothing"
