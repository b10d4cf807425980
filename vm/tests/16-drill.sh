#!/usr/bin/env bash
# 16-drill: zrb drill and zrb restore --path on OpenZFS 2.3. A filesystem with a chain L0 -> L1
# (files, modes, a symlink, an empty directory) whose live data changes after each snapshot,
# and a zvol. The drill of the filesystem reads the source snapshot through .zfs/snapshot (no
# clone), the zvol's through a read-only clone, and both pass: every path compared, 0 differ.
# An older point (--level 0) passes too. No drill pool, clone or file is left. restore --path
# brings a directory (with the symlink) and a file back equal to the snapshot (sha256, mode,
# mtime, size, link target); a second run refuses to overwrite (exit 9), --force overwrites.
# A raw-encrypted dataset restores and verifies, and the drill says its files were not compared.
# needs: 01
source ./lib.sh

D=$POOL/drill
V=$POOL/drillvol
DCONF=$W/drill.yaml
VCONF=$W/drillvol.yaml
KEY=$KEYS/zrb_private.key
zfs list -H "$D" >/dev/null 2>&1 && fail "$D already exists: 16 must run on a fresh boot"
run zfs create "$D"
run zfs create -V 16M "$V"
M=$(mountpoint_of "$D")
mkdir -p "$M/docs/deep" "$M/empty"
head -c $((5 * 1024 * 1024 + 17)) /dev/urandom > "$M/big.bin"
head -c 5000 /dev/urandom > "$M/docs/a.txt"
head -c 300000 /dev/urandom > "$M/docs/deep/b.bin"
ln -s a.txt "$M/docs/link"
chmod 600 "$M/docs/a.txt"; chmod 701 "$M/docs/deep"; chmod 750 "$M/empty"
touch -h -d '2001-02-03 04:05:06.789' "$M/docs/deep/b.bin"
udevadm settle 2>/dev/null || true
for _ in $(seq 1 50); do [ -e "/dev/zvol/$V" ] && break; sleep 0.2; done
[ -e "/dev/zvol/$V" ] || fail "no device /dev/zvol/$V"
run dd if=/dev/urandom of="/dev/zvol/$V" bs=1M count=6 conv=fsync status=none

rm -rf /var/lib/zrb-drill /var/lib/zrb-drillvol
write_config "$DCONF" /var/lib/zrb-drill dr "$D"
write_config "$VCONF" /var/lib/zrb-drillvol dv "$V"
s0=$(zrb_snapshot "$DCONF" dr 0)
run "$ZRB" backup --config "$DCONF" --task dr --level 0 >/dev/null
head -c 200000 /dev/urandom > "$M/docs/c.bin"; rm "$M/docs/deep/b.bin"
s1=$(zrb_snapshot "$DCONF" dr 1)
run "$ZRB" backup --config "$DCONF" --task dr --level 1 >/dev/null
v0=$(zrb_snapshot "$VCONF" dv 0)
run "$ZRB" backup --config "$VCONF" --task dv --level 0 >/dev/null
# the live data moves on: the drills must compare with the snapshots, not with this
head -c 1000 /dev/urandom > "$M/big.bin"; echo live > "$M/live-only.txt"
run dd if=/dev/urandom of="/dev/zvol/$V" bs=1M count=1 conv=fsync status=none

leftovers() { { zpool list -H -o name; zfs list -H -o name -r "$POOL"; ls /var/lib/zrb-drill/drill /var/lib/zrb-drillvol/drill 2>/dev/null; } | grep zrbdrill || true; }
snapdir() { echo "$M/.zfs/snapshot/$1"; }
npaths() { (cd "$(snapdir "$1")" && find . -mindepth 1 | wc -l); }

# --- the filesystem, newest point: through .zfs/snapshot ---------------------------------------
out=$("$ZRB" drill --config "$DCONF" --task dr --private-key "$KEY") || fail "zrb drill of $D failed: $out"
say "$out"
line=$(grep '^drill: ' <<<"$out") || fail "no drill: line in: $out"
[[ "$line" =~ ^drill:\ ([0-9]+)\ files\ compared,\ 0\ differ,\ restore\ [0-9.]+\ s\ \([0-9.]+\ MB/s\)$ ]] || fail "unexpected drill line: $line"
n1=${BASH_REMATCH[1]}
[ "$n1" = "$(npaths "$s1")" ] || fail "the drill compared $n1 paths, $D@$s1 has $(npaths "$s1")"
[ -z "$(leftovers)" ] || fail "left behind after the drill: $(leftovers)"

# --- an older point, --json: the source read through .zfs/snapshot, no clone ---------------------
r0=$("$ZRB" drill --config "$DCONF" --task dr --private-key "$KEY" --level 0 --json | job_result)
[ "$(jq -r .source <<<"$r0")" = snapdir ] || fail "the drill of $D@$s0 did not read .zfs/snapshot: $r0"
[ "$(jq -r .differ <<<"$r0")" = 0 ] || fail "the drill of $D@$s0 found differences: $r0"
[ "$(jq -r .compared <<<"$r0")" = "$(npaths "$s0")" ] || fail "the drill of $D@$s0 compared $(jq -r .compared <<<"$r0") paths, the snapshot has $(npaths "$s0")"
[ -z "$(leftovers)" ] || fail "left behind after the drill: $(leftovers)"

# --- the zvol: its bytes, through a read-only clone --------------------------------------------
rv=$("$ZRB" drill --config "$VCONF" --task dv --private-key "$KEY" --json | job_result)
[ "$(jq -r '[.source, .compared, .differ] | join(" ")' <<<"$rv")" = "clone 1 0" ] || fail "the zvol drill: $rv"
[ -z "$(leftovers)" ] || fail "left behind after the zvol drill: $(leftovers)"

# --- restore --path: a directory (with a symlink) and a file, equal to the snapshot ------------
O=/root/drill-out
rm -rf "$O"; mkdir -p "$O"
run "$ZRB" restore --config "$DCONF" --task dr --private-key "$KEY" --path docs --path big.bin --to "$O"
tree_manifest "$O/docs" > /tmp/docs-got.txt
tree_manifest "$(snapdir "$s1")/docs" > /tmp/docs-want.txt
compare_files /tmp/docs-want.txt /tmp/docs-got.txt "docs restored with --path and $D@$s1"
cmp "$O/big.bin" "$(snapdir "$s1")/big.bin" || fail "big.bin restored with --path differs from $D@$s1"
[ "$(stat -c '%a %Y' "$O/big.bin")" = "$(stat -c '%a %Y' "$(snapdir "$s1")/big.bin")" ] || fail "big.bin's mode or mtime differ"
[ "$(readlink "$O/docs/link")" = a.txt ] || fail "docs/link is not the symlink to a.txt"
# an older file, deleted since
run "$ZRB" restore --config "$DCONF" --task dr --private-key "$KEY" --level 0 --path docs/deep/b.bin --to "$O"
cmp "$O/docs/deep/b.bin" "$(snapdir "$s0")/docs/deep/b.bin" || fail "docs/deep/b.bin of $s0 differs"
[ "$(stat -c '%Y' "$O/docs/deep/b.bin")" = "$(stat -c '%Y' "$(snapdir "$s0")/docs/deep/b.bin")" ] || fail "docs/deep/b.bin's mtime differs"
# never over an existing file without --force
echo mine > "$O/big.bin"
set +e; "$ZRB" restore --config "$DCONF" --task dr --private-key "$KEY" --path big.bin --to "$O" 2>/tmp/refuse.txt; rc=$?; set -e
[ "$rc" = 9 ] || fail "restore --path over an existing file exited $rc, want 9: $(cat /tmp/refuse.txt)"
grep -q "$O/big.bin exists" /tmp/refuse.txt || fail "the refusal does not name $O/big.bin: $(cat /tmp/refuse.txt)"
[ "$(cat "$O/big.bin")" = mine ] || fail "the refused restore changed $O/big.bin"
run "$ZRB" restore --config "$DCONF" --task dr --private-key "$KEY" --path big.bin --to "$O" --force
cmp "$O/big.bin" "$(snapdir "$s1")/big.bin" || fail "--force did not restore big.bin"
[ -z "$(leftovers)" ] || fail "left behind after restore --path: $(leftovers)"

# --- a raw-encrypted dataset: restored and verified, its files unreadable without its key -------
E=$POOL/drillsecret
echo zrb-vm-drill-passphrase | run zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt "$E"
head -c 300000 /dev/urandom > "$(mountpoint_of "$E")/s.bin"
rm -rf /var/lib/zrb-drillsecret
write_config "$W/drillsecret.yaml" /var/lib/zrb-drillsecret ds "$E"
zrb_snapshot "$W/drillsecret.yaml" ds 0 >/dev/null
run "$ZRB" backup --config "$W/drillsecret.yaml" --task ds --level 0 >/dev/null
"$ZRB" drill --config "$W/drillsecret.yaml" --task ds --private-key "$KEY" >/tmp/enc-out.txt 2>/tmp/enc-err.txt || fail "the drill of the raw-encrypted $E failed: $(cat /tmp/enc-err.txt)"
grep -q "no source compared ($E is sent raw (encrypted)" /tmp/enc-err.txt || fail "the drill of $E did not say why nothing was compared: $(cat /tmp/enc-err.txt)"
grep -q '^drill: 0 files compared, 0 differ, ' /tmp/enc-out.txt || fail "unexpected drill output for $E: $(cat /tmp/enc-out.txt)"
[ -z "$(leftovers)" ] || fail "left behind after the encrypted drill: $(leftovers)"

result "drill of $D@$s1 ($n1 paths) and @$s0 via .zfs/snapshot, of the zvol $V@$v0 by its bytes via a clone: 0 differ, nothing left; restore --path of a directory with a symlink and a file equal to the snapshot (sha256, mode, mtime), an old deleted file back, overwrite refused (exit 9) then --force; a raw-encrypted dataset restored, verified, reported as not compared"
