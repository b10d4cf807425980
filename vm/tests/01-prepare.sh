#!/usr/bin/env bash
# 01-prepare: the pool on the second disk, the main dataset with files of several
# sizes (one larger than the chunk size), the key pair made by `zrb genkey`, the
# config, and `zrb check`.
# needs:
source ./lib.sh

run "$ZRB" --version
zpool list "$POOL" >/dev/null 2>&1 && fail "pool $POOL already exists: 01 must run on a fresh boot"
run zpool create -f -o ashift=12 -O compression=lz4 -O atime=off "$POOL" /dev/vdb
run zfs create "$DS"
M=$(mountpoint_of "$DS")

# files: empty, tiny, block-edge sizes, >chunk, nested dirs, a symlink, odd names
mkdir -p "$M/docs/deep/er" "$M/bin" "$M/empty-dir"
: > "$M/empty"
printf x > "$M/one-byte"
head -c 4095 /dev/urandom > "$M/docs/4095"
head -c 65536 /dev/urandom > "$M/docs/64k"
head -c 131073 /dev/urandom > "$M/docs/deep/128k+1"
head -c $((1024 * 1024)) /dev/urandom > "$M/bin/1m"
head -c $((10 * 1024 * 1024 + 123)) /dev/urandom > "$M/bin/big-10m"     # > CHUNK (4 MiB)
seq 1 200000 > "$M/docs/deep/er/numbers.txt"                              # compressible
printf 'spaces and ünïcödé\n' > "$M/docs/name with spaces ü.txt"
ln -s docs/64k "$M/link-to-64k"
chmod 640 "$M/docs/4095"; chmod 755 "$M/bin/1m"
truncate -s 5M "$M/sparse-5m"; printf tail >> "$M/sparse-5m"

# key pair in the guest with the binary; cross-check it with the stock age tool
rm -rf "$KEYS"
run "$ZRB" genkey --out-dir "$KEYS"
[ -s "$KEYS/zrb_private.key" ] && [ -s "$KEYS/zrb_public.key" ] || fail "zrb genkey did not write both key files in $KEYS"
[ "$(stat -c %a "$KEYS/zrb_private.key")" = 600 ] || fail "private key mode is $(stat -c %a "$KEYS/zrb_private.key"), want 600"
pub=$(grep -o 'age1[0-9a-z]*' "$KEYS/zrb_public.key" | head -1)
derived=$(age-keygen -y "$KEYS/zrb_private.key") || fail "age-keygen -y cannot read zrb's private key"
[ "$pub" = "$derived" ] || fail "zrb_public.key ($pub) is not the public key of zrb_private.key ($derived)"
echo probe | age -r "$pub" | age -d -i "$KEYS/zrb_private.key" | grep -qx probe || fail "age round trip with the zrb key pair failed"

write_config "$CONF" /var/lib/zrb "$TASK" "$DS"
grep -q 'AGE-SECRET-KEY' "$CONF" && fail "the config contains a private key"
run "$ZRB" check --config "$CONF"

n=$(find "$M" -type f | wc -l)
bytes=$(du -sb --apparent-size "$M" | cut -f1)
result "pool $POOL on /dev/vdb, $DS with $n files / $bytes bytes; genkey pair matches age-keygen -y; zrb check ok"
