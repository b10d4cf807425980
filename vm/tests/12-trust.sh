#!/usr/bin/env bash
# 12-trust: on OpenZFS, the backups are signed and their streams' records check out — raw
# (06) and compressed (07) sends included: zrb verify with the private key reports the
# signatures fine and "records: ok" (BEGIN guids = the manifest's, END present) for every
# backup of the three tasks. Then a forgery: the newest manifest of the main task with its
# signature stripped is refused by restore (exit 7) before zfs receive starts (the target
# is never created), and restores with --allow-unsigned.
# needs: 01 06 07
source ./lib.sh

for spec in "$CONF $TASK" "$W/config-secret.yaml vmsecret" "$W/config-comp.yaml vmcomp"; do
  read -r conf task <<<"$spec"
  # --json prints JSON-lines events; the result is in the final "done" event
  out=$("$ZRB" verify --config "$conf" --task "$task" --private-key "$KEYS/zrb_private.key" --json | jq -c 'select(.event == "done") | .result') || fail "zrb verify of $task failed"
  jq -e '.ok == true and ([.backups[] | .streamRecords == "ok" and .streamBlake3 == "ok"] | all)' <<<"$out" >/dev/null \
    || fail "verify of $task: $(jq -c '[.backups[] | {backupId, streamBlake3, streamRecords}]' <<<"$out")"
  n=$(jq '.backups | length' <<<"$out")
  say "$task: $n backup(s) signed, records ok"
done

json=$(list_json "$CONF" "$TASK")
jq -e '[.[] | .signed] | all' <<<"$json" >/dev/null || fail "not every backup of $TASK is signed: $(jq -c '[.[] | {backupId, signed}]' <<<"$json")"
id=$(jq -r 'last | .backupId' <<<"$json")
key="${PREFIX}manifests/$DS/$id.manifest.yaml"
s3_get "$ZRB_BUCKET" "$key" /tmp/orig.yaml
grep -v -e '^signature:' -e '^  alg: ed25519' -e '^  key: zrbverify1' -e '^  value: ' /tmp/orig.yaml > /tmp/stripped.yaml
! grep -q zrbverify1 /tmp/stripped.yaml || fail "could not strip the signature of $key"
s3_put "$ZRB_BUCKET" "$key" /tmp/stripped.yaml
set +e
"$ZRB" restore --config "$CONF" --task "$TASK" --target "$POOL/forged" --private-key "$KEYS/zrb_private.key" 2>/tmp/forged.err
code=$?
set -e
cat /tmp/forged.err
[ "$code" = 7 ] || fail "restore of a stripped manifest exited $code, expected 7"
grep -q "not signed" /tmp/forged.err || fail "restore did not say the backup is not signed"
! zfs list -H -o name "$POOL/forged" >/dev/null 2>&1 || fail "$POOL/forged exists: zfs receive was started for a forged backup"
run "$ZRB" restore --config "$CONF" --task "$TASK" --target "$POOL/forged" --private-key "$KEYS/zrb_private.key" --allow-unsigned
s3_put "$ZRB_BUCKET" "$key" /tmp/orig.yaml
[ "$(guid_of "$POOL/forged@$(jq -r 'last | .snapshot' <<<"$json" | sed 's/.*@//')")" = "$(jq -r 'last | .snapshotGuid' <<<"$json")" ] || fail "the --allow-unsigned restore has the wrong guid"

result "signed backups of $TASK, vmsecret (raw) and vmcomp (compressed): signatures and stream records ok; a stripped signature refused (exit 7) before zfs receive, restored with --allow-unsigned"
