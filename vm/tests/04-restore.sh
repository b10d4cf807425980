#!/usr/bin/env bash
# 04-restore: from an EMPTY base_dir (a fresh config: what a new machine has),
# restore the whole chain 0..4 into a new dataset and compare every file and
# every snapshot guid with the source; --plan changes nothing; a restore of a
# mid-chain level (--level 2) matches that snapshot; a target left holding a partial
# resumable receive is refused without --force and discarded with it.
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

# a target holding a partially received stream (an interrupted `zfs receive -s`, made here with
# stock tools): refused without --force, naming the way out; --force discards it (zfs receive -A,
# which OpenZFS lists outside brackets in its usage) and restores the chain
first=${chain[0]%% *}
zfs send "$DS@$first" | head -c 2000000 | zfs receive -s "$POOL/partial" 2>/dev/null && fail "a cut stream was received whole"
token=$(zfs get -H -o value receive_resume_token "$POOL/partial")
[ -n "$token" ] && [ "$token" != "-" ] || fail "the cut receive left no resume token on $POOL/partial"
rc=0; out=$("$ZRB" restore --config "$conf2" --task "$TASK" --target "$POOL/partial" --private-key "$KEYS/zrb_private.key" 2>&1) || rc=$?
[ "$rc" -eq 5 ] || fail "restore onto a partial receive exited $rc, not 5: $out"
grep -q "holds a partially received stream" <<<"$out" || fail "restore onto a partial receive did not say why: $out"
run "$ZRB" restore --config "$conf2" --task "$TASK" --target "$POOL/partial" --private-key "$KEYS/zrb_private.key" --force
ensure_mounted "$POOL/partial"
tree_manifest "$(mountpoint_of "$POOL/partial")" > /tmp/partial.txt
compare_files "$(sums_of "$DS" "$newest")" /tmp/partial.txt "files of $POOL/partial (after --force over a partial receive) and $DS@$newest"

result "chain 0-4 restored from an empty base_dir: $nfiles files (sha256, mode, mtime, size) equal to $DS@$newest, 5/5 snapshot guids equal; --level 2 restore equal to $DS@$mid; --plan created nothing; a partial receive refused, then discarded with --force and the chain restored"
