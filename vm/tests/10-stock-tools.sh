#!/usr/bin/env bash
# 10-stock-tools: the disaster path without zrb. Download the level-0 parts with
# a plain S3 client, decrypt each with the stock `age` CLI, concatenate them in key
# order and `zfs receive` the result; its files and guid must equal the source.
# The manifest must carry the stream's BLAKE3 (checked with b3sum) and each part's
# ciphertext SHA-256.
# needs: 02
source ./lib.sh

mapfile -t chain < <(snaps_of "$DS")
s0=${chain[0]%% *}
entry=$(backup_entry "$(list_json "$CONF" "$TASK")" 0 "$s0")
id=$(jq -r '.backupId' <<<"$entry")
dir=/var/tmp/stock; rm -rf "$dir"; mkdir -p "$dir/parts"

# every manifest object that names this backup id
n=0
while read -r key _; do
  s3_get "$ZRB_BUCKET" "$key" "$dir/m.tmp"
  if grep -qF "$id" "$dir/m.tmp"; then cat "$dir/m.tmp" >> "$dir/manifests"; n=$((n + 1)); fi
done < <(manifest_keys "$DS")
[ "$n" -ge 1 ] || fail "no manifest object under ${PREFIX}manifests/$DS/ mentions backup $id"

i=0
: > "$dir/stream"
while read -r key size; do
  f=$dir/parts/$(printf '%05d' "$i")
  s3_get "$ZRB_BUCKET" "$key" "$f"
  [ "$(stat -c %s "$f")" -eq "$size" ] || fail "downloaded $key has $(stat -c %s "$f") bytes, listed $size"
  sha=$(sha256sum "$f" | cut -d' ' -f1)
  grep -qi "$sha" "$dir/manifests" || fail "the ciphertext SHA-256 of part $key ($sha) is not in the manifest"
  age -d -i "$KEYS/zrb_private.key" "$f" >> "$dir/stream" || fail "age -d cannot decrypt part $key"
  i=$((i + 1))
done < <(data_keys "$DS" 0 "$id")
[ "$i" -eq "$(parts_of "$entry")" ] || fail "found $i parts, zrb list says $(parts_of "$entry")"

b3=$(b3sum --no-names "$dir/stream")
grep -qi "$b3" "$dir/manifests" || fail "BLAKE3 of the decrypted stream ($b3) is not in the manifest"
run zfs receive -u "$POOL/stock" < "$dir/stream"
ensure_mounted "$POOL/stock"
tree_manifest "$(mountpoint_of "$POOL/stock")" > /tmp/stock.txt
compare_files "$(sums_of "$DS" "$s0")" /tmp/stock.txt "files of $POOL/stock (stock-tools restore) and $DS@$s0"
[ "$(guid_of "$POOL/stock@$s0")" = "$(guid_of "$DS@$s0")" ] || fail "guid of $POOL/stock@$s0 differs from the source"
rm -rf "$dir"

result "level 0 recovered with curl + age -d + cat + zfs receive: $i parts (sha256 in manifest), stream BLAKE3 in manifest, files + guid equal to $DS@$s0"
