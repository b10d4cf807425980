#!/usr/bin/env bash
# 06-raw-encrypted: an encrypted dataset (encryption=on, keyformat=passphrase) is
# sent raw: what lands in the bucket is ZFS ciphertext, the restored dataset is
# still encrypted with the source's key (keystatus=unavailable until load-key),
# and after load-key its files equal the source. Levels 0 and 1.
# needs: 01
source ./lib.sh

EDS=$POOL/secret
conf=$W/config-secret.yaml
etask=vmsecret
pass=zrb-vm-test-passphrase
echo "$pass" | run zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt "$EDS"
EM=$(mountpoint_of "$EDS")
mkdir -p "$EM/d"
head -c $((5 * 1024 * 1024)) /dev/urandom > "$EM/d/secret-5m"
printf 'the plaintext marker ZRB-VM-PLAINTEXT-MARKER\n%.0s' $(seq 1 2000) > "$EM/marker.txt"
rm -rf /var/lib/zrb-secret
write_config "$conf" /var/lib/zrb-secret "$etask" "$EDS"

s0=$(zrb_snapshot "$conf" "$etask" 0); record "$EDS" "$s0"
run "$ZRB" backup --config "$conf" --task "$etask" --level 0
printf 'more\n' >> "$EM/marker.txt"; head -c 100000 /dev/urandom > "$EM/d/new"
s1=$(zrb_snapshot "$conf" "$etask" 1); record "$EDS" "$s1"
run "$ZRB" backup --config "$conf" --task "$etask" --level 1
json=$(list_json "$conf" "$etask")
backup_entry "$json" 0 "$s0" >/dev/null; backup_entry "$json" 1 "$s1" >/dev/null

rm -rf /var/lib/zrb-secret-restore
write_config "$W/config-secret-restore.yaml" /var/lib/zrb-secret-restore "$etask" "$EDS"
run "$ZRB" restore --config "$W/config-secret-restore.yaml" --task "$etask" --target "$POOL/secret_restored" --private-key "$KEYS/zrb_private.key"
enc=$(zfs get -H -o value encryption "$POOL/secret_restored")
ks=$(zfs get -H -o value keystatus "$POOL/secret_restored")
[ "$enc" != off ] || fail "$POOL/secret_restored is not encrypted: the send was not raw (zfs send -w)"
[ "$ks" = unavailable ] || fail "keystatus of $POOL/secret_restored is '$ks' before load-key; a raw receive leaves it 'unavailable'"
echo "$pass" | run zfs load-key "$POOL/secret_restored"
ensure_mounted "$POOL/secret_restored"
tree_manifest "$(mountpoint_of "$POOL/secret_restored")" > /tmp/secret-restored.txt
compare_files "$(sums_of "$EDS" "$s1")" /tmp/secret-restored.txt "files of $POOL/secret_restored and $EDS@$s1"
for s in "$s0" "$s1"; do
  [ "$(guid_of "$POOL/secret_restored@$s")" = "$(guid_of "$EDS@$s")" ] || fail "guid of $POOL/secret_restored@$s differs from the source"
done

result "raw send of $EDS (levels 0+1): restored dataset encrypted ($enc, key unavailable until load-key with the source passphrase), files equal to $EDS@$s1, 2/2 guids equal"
