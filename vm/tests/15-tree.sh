#!/usr/bin/env bash
# 15-tree: a recursive task on OpenZFS — a tree with nested filesystems, a volume (zvol), an
# encrypted child with an encrypted child of its own (sent raw, -w) and an excluded child, with
# send_properties (-p: compound streams, on raw sends too). One atomic snapshot of the tree; every
# child its own chain; a child added before the second run gets its level 0; the tree restored
# under a new target: files, the volume's bytes and the guids equal, the encrypted children still
# encrypted until load-key, a property received; verify of the tree passes; recursive on a zvol is
# refused.
# needs: 01
source ./lib.sh

T=$POOL/tree
TCONF=$W/tree.yaml
TT=tree
pass=zrb-vm-tree-passphrase
zfs list -H "$T" >/dev/null 2>&1 && fail "$T already exists: 15 must run on a fresh boot"
run zfs create "$T"
run zfs create -p "$T/home/alice"
run zfs set org.zrb:owner=alice "$T/home/alice"
run zfs create -V 16M "$T/vol"
echo "$pass" | run zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt "$T/secret"
run zfs create "$T/secret/inner"
run zfs create "$T/scratch"
for d in "$T" "$T/home" "$T/home/alice" "$T/secret" "$T/secret/inner" "$T/scratch"; do
  m=$(mountpoint_of "$d"); mkdir -p "$m/d"
  head -c $((300000 + RANDOM)) /dev/urandom > "$m/d/f.bin"
done
udevadm settle 2>/dev/null || true
for _ in $(seq 1 50); do [ -e "/dev/zvol/$T/vol" ] && break; sleep 0.2; done
[ -e "/dev/zvol/$T/vol" ] || fail "no device /dev/zvol/$T/vol"
run dd if=/dev/urandom of="/dev/zvol/$T/vol" bs=1M count=6 conv=fsync status=none

rm -rf /var/lib/zrb-tree
write_config "$TCONF" /var/lib/zrb-tree "$TT" "$T"
cat >> "$TCONF" <<'YAML'
    recursive: true
    exclude: [scratch]
    send_properties: true
YAML
run "$ZRB" check --config "$TCONF"

# record_tree SNAP: the files of every filesystem child and the volume's bytes at SNAP
record_tree() {
  local d
  for d in "$T" "$T/home" "$T/home/alice" "$T/secret" "$T/secret/inner"; do record "$d" "$1"; done
  sha256sum < "/dev/zvol/$T/vol" | cut -d' ' -f1 > "$SUMS/vol@$1.sha"
}

# --- run 1: level 0 of the whole tree -------------------------------------------------------------
s0=$(zrb_snapshot "$TCONF" "$TT" 0)
for d in "$T" "$T/home" "$T/home/alice" "$T/vol" "$T/secret" "$T/secret/inner" "$T/scratch"; do
  zfs list -H -o name "$d@$s0" >/dev/null || fail "the atomic snapshot missed $d@$s0"
done
sync; record_tree "$s0"
out=$("$ZRB" backup --config "$TCONF" --task "$TT" --level 0 --json) || fail "backup of the tree (level 0) failed"
res=$(tail -1 <<<"$out" | jq -c .result)
got=$(jq -r '[.children[] | "\(.child)=\(.status)/L\(.level)"] | join(" ")' <<<"$res")
[ "$got" = "=ok/L0 home=ok/L0 home/alice=ok/L0 secret=ok/L0 secret/inner=ok/L0 vol=ok/L0" ] || fail "run 1 children: $got"
[ "$(jq -c .excluded <<<"$res")" = '["scratch"]' ] || fail "excluded: $(jq -c .excluded <<<"$res")"
for c in secret secret/inner; do
  key=$(jq -r --arg c "$c" '.children[] | select(.child == $c) | .manifest' <<<"$res")
  s3_get "$ZRB_BUCKET" "$PREFIX$key" /tmp/tree-manifest.yaml || fail "cannot read the manifest of $c"
  grep -q -- '- -w' /tmp/tree-manifest.yaml || fail "$c was not sent raw: $(grep -A4 'flags:' /tmp/tree-manifest.yaml)"
  grep -q -- '- -p' /tmp/tree-manifest.yaml || fail "$c was not sent with -p"
done
[ -z "$(data_keys "$T/scratch")" ] || fail "the excluded child has objects in the bucket"

# --- run 2: a new child, changed data, level 1 ----------------------------------------------------
run zfs create "$T/home/bob"
head -c 200000 /dev/urandom > "$(mountpoint_of "$T/home/bob")/b.bin"
head -c 50000 /dev/urandom > "$(mountpoint_of "$T/home/alice")/d/g.bin"
run dd if=/dev/urandom of="/dev/zvol/$T/vol" bs=1M count=1 seek=8 conv=fsync status=none
s1=$(zrb_snapshot "$TCONF" "$TT" 1)
sync; record_tree "$s1"; record "$T/home/bob" "$s1"
out=$("$ZRB" backup --config "$TCONF" --task "$TT" --level 1 --json) || fail "backup of the tree (level 1) failed"
res=$(tail -1 <<<"$out" | jq -c .result)
got=$(jq -r '[.children[] | "\(.child)=\(.status)/L\(.level)"] | join(" ")' <<<"$res")
[ "$got" = "=ok/L1 home=ok/L1 home/alice=ok/L1 home/bob=ok/L0 secret=ok/L1 secret/inner=ok/L1 vol=ok/L1" ] || fail "run 2 children: $got"
jq -r '.children[] | select(.child == "home/bob") | .note' <<<"$res" | grep -q "level 0 instead of level 1" || fail "the new child's level 0 was not explained"

# --- restore the tree ------------------------------------------------------------------------------
R=$POOL/tree_restored
run "$ZRB" restore --config "$TCONF" --task "$TT" --target "$R" --private-key "$KEYS/zrb_private.key"
for c in "" home home/alice home/bob vol secret secret/inner; do
  src=$T${c:+/$c}; dst=$R${c:+/$c}
  [ "$(guid_of "$dst@$s1")" = "$(guid_of "$src@$s1")" ] || fail "guid of $dst@$s1 differs from $src@$s1"
done
[ "$(zfs get -H -o value type "$R/vol")" = volume ] || fail "$R/vol is not a volume"
for _ in $(seq 1 50); do [ -e "/dev/zvol/$R/vol" ] && break; sleep 0.2; done
[ "$(sha256sum < "/dev/zvol/$R/vol" | cut -d' ' -f1)" = "$(cat "$SUMS/vol@$s1.sha")" ] || fail "the restored volume's bytes differ"
for c in secret secret/inner; do
  [ "$(zfs get -H -o value encryption "$R/$c")" != off ] || fail "$R/$c is not encrypted: not a raw receive"
  [ "$(zfs get -H -o value keystatus "$R/$c")" = unavailable ] || fail "$R/$c has its key loaded before load-key"
done
for c in secret secret/inner; do
  if [ "$(zfs get -H -o value keystatus "$R/$c")" = unavailable ] && [ "$(zfs get -H -o value encryptionroot "$R/$c")" = "$R/$c" ]; then
    echo "$pass" | run zfs load-key "$R/$c"
  fi
done
[ "$(zfs get -H -o value,source org.zrb:owner "$R/home/alice" | tr '\t' ' ')" = "alice received" ] || fail "the property sent with -p did not come back"
# Mounted like the source (children inside their parents), the excluded child aside, each
# filesystem's files equal what its source held at the run.
for c in "" home home/alice home/bob secret secret/inner; do ensure_mounted "$R${c:+/$c}"; done
n=0
for c in "" home home/alice home/bob secret secret/inner; do
  tree_manifest "$(mountpoint_of "$R${c:+/$c}")" | grep -v scratch > /tmp/tree-restored.txt
  grep -v scratch "$(sums_of "$T${c:+/$c}" "$s1")" > /tmp/tree-expected.txt
  compare_files /tmp/tree-expected.txt /tmp/tree-restored.txt "files of $R${c:+/$c} and $T${c:+/$c}@$s1"
  n=$((n + 1))
done

run "$ZRB" verify --config "$TCONF" --task "$TT" --private-key "$KEYS/zrb_private.key"

# --- recursive on a volume is refused -------------------------------------------------------------
write_config "$W/tree-vol.yaml" /var/lib/zrb-tree-vol vtree "$T/vol"
printf '    recursive: true\n' >> "$W/tree-vol.yaml"
rc=0; err=$("$ZRB" snapshot --config "$W/tree-vol.yaml" --task vtree --level 0 2>&1) || rc=$?
[ "$rc" = 3 ] || fail "recursive on a zvol: exit $rc, want 3: $err"
grep -q "is a volume (zvol), which has no children" <<<"$err" || fail "recursive on a zvol: $err"

result "tree of 7 datasets (a zvol, an encrypted child and its child sent raw with -p, an excluded child): levels 0+1, a new child at level 0; restored: $n filesystems' files, the zvol's bytes and 7/7 guids equal, encrypted until load-key, a -p property received; verify ok; recursive on a zvol refused (exit 3)"
