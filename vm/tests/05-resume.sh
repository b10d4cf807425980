#!/usr/bin/env bash
# 05-resume: kill -9 zrb in the middle of a many-part upload (1 MiB chunks, the
# guest's uplink throttled with tc), run the backup again: it must complete the
# same backup (no second backup id, parts = objects), and a restore from an empty
# base_dir must equal the source.
# needs: 01
source ./lib.sh

RDS=$POOL/resume
conf=$W/config-resume.yaml
rtask=vmresume
run zfs create "$RDS"
RM=$(mountpoint_of "$RDS")
for i in 1 2 3 4 5 6; do head -c $((4 * 1024 * 1024 + i)) /dev/urandom > "$RM/file-$i"; done
rm -rf /var/lib/zrb-resume
write_config "$conf" /var/lib/zrb-resume "$rtask" "$RDS" 1MiB 2
snap=$(zrb_snapshot "$conf" "$rtask" 0)
record "$RDS" "$snap"

# ~24 MiB at 4 Mbit/s: ~50 s of upload, room to kill it in the middle
unthrottle() { tc qdisc del dev eth0 root 2>/dev/null || true; }
trap unthrottle EXIT
run tc qdisc add dev eth0 root tbf rate 4mbit burst 32kbit latency 1s

say "+ zrb backup --level 0 (to be killed)"
"$ZRB" backup --config "$conf" --task "$rtask" --level 0 > /tmp/resume-run1.log 2>&1 &
pid=$!
uploaded=0
for (( i = 0; i < 600; i++ )); do
  kill -0 "$pid" 2>/dev/null || { cat /tmp/resume-run1.log; fail "the backup ended before it could be killed (after $uploaded parts were seen)"; }
  uploaded=$(data_keys "$RDS" 0 | grep -c . || true)
  [ "$uploaded" -ge 4 ] && break
  sleep 0.5
done
[ "$uploaded" -ge 4 ] || fail "no 4 parts uploaded within 300 s; run log: $(tail -5 /tmp/resume-run1.log)"
run kill -9 "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 137 ] || fail "zrb exited with $rc, not by SIGKILL (137): it had already finished"
say "killed zrb (pid $pid) with $uploaded part objects in the bucket"
tail -5 /tmp/resume-run1.log
# its 'zfs send' child dies of SIGPIPE; wait for it before sending again
for (( i = 0; i < 60; i++ )); do pgrep -f "zfs send.*$RDS@" >/dev/null || break; sleep 0.5; done
pgrep -af "zfs send.*$RDS@" && fail "zfs send of $RDS still running 30 s after zrb was killed"

before=$(list_json "$conf" "$rtask")
[ "$(jq 'length' <<<"$before")" -eq 0 ] || fail "zrb list shows a finished backup after the kill (the kill came too late): $before"
unthrottle

run "$ZRB" backup --config "$conf" --task "$rtask" --level 0
entry=$(backup_entry "$(list_json "$conf" "$rtask")" 0 "$snap")
id=$(jq -r '.backupId' <<<"$entry"); parts=$(parts_of "$entry")
[ "$parts" -ge 20 ] || fail "a 24 MiB stream in 1 MiB chunks should have >= 20 parts, list says $parts"
all=$(data_keys "$RDS" 0)
mine=$(data_keys "$RDS" 0 "$id")
[ "$(grep -c . <<<"$mine")" -eq "$parts" ] || fail "backup $id: $(grep -c . <<<"$mine") part objects, list says $parts"
[ "$all" = "$mine" ] || fail "objects outside the resumed backup $id (a second backup instead of a resume?):
$(comm -23 <(echo "$all") <(echo "$mine"))"

rm -rf /var/lib/zrb-resume-restore
write_config "$W/config-resume-restore.yaml" /var/lib/zrb-resume-restore "$rtask" "$RDS" 1MiB 2
run "$ZRB" restore --config "$W/config-resume-restore.yaml" --task "$rtask" --target "$POOL/resume_restored" --private-key "$KEYS/zrb_private.key"
ensure_mounted "$POOL/resume_restored"
tree_manifest "$(mountpoint_of "$POOL/resume_restored")" > /tmp/resume-restored.txt
compare_files "$(sums_of "$RDS" "$snap")" /tmp/resume-restored.txt "files of $POOL/resume_restored and $RDS@$snap"
[ "$(guid_of "$POOL/resume_restored@$snap")" = "$(guid_of "$RDS@$snap")" ] || fail "guid of the restored snapshot differs"

result "killed -9 after $uploaded/$parts parts; rerun completed backup $id with $parts parts = objects, no stray objects; restore equal to $RDS@$snap (6 files sha256 + guid)"
