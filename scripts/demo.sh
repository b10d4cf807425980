#!/usr/bin/env bash
# A real backup and restore round trip on a throwaway zfs-fuse pool.
#   bash scripts/demo.sh          # target: a local directory (s3.enabled: false)
#   bash scripts/demo.sh --s3     # target: a local Ceph radosgw on 127.0.0.1 (started if needed)
# Works on a fresh clone (Debian 12, root): scripts/bootstrap.sh first installs what is
# missing (apt packages, node_modules) and builds dist/zrb-linux-x64 when it is missing or
# older than the sources. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin:/sbin"
USE_S3=0
case "${1:-}" in
  "") ;;
  --s3) USE_S3=1 ;;
  *) echo "demo.sh: unknown argument '$1' (usage: bash scripts/demo.sh [--s3])" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it creates a zfs-fuse pool)" >&2; exit 1; }
bash scripts/bootstrap.sh "$([ $USE_S3 = 1 ] && echo demo-s3 || echo demo)"
BUN=node_modules/.bin/bun
ZRB=$ROOT/dist/zrb-linux-x64
bash test/rig/zfs-fuse.sh up
W=$(mktemp -d /var/tmp/zrb-demo.XXXXXX)
POOL=zrbdemo$$
# zfs-fuse releases files asynchronously after close(), so right after the checksums the
# pool may still be "busy": retry for a while. Its vdev file is removed only once it is gone.
cleanup() {
  local i err=""
  for ((i = 0; i < 60; i++)); do
    zpool list "$POOL" >/dev/null 2>&1 || { rm -rf "$W"; return 0; }
    err=$(zpool destroy -f "$POOL" 2>&1) || sleep 0.25
  done
  echo "demo.sh: could not destroy the demo pool $POOL ($err); remove it with: zpool destroy -f $POOL && rm -rf $W" >&2
  return 1
}
trap 'cleanup || exit 1' EXIT
truncate -s 256M "$W/vdev"
zpool create -m "$W/mnt" "$POOL" "$W/vdev"
zfs create "$POOL/photos"
head -c 5000000 /dev/urandom > "$W/mnt/photos/holiday.raw"
echo "family photos" > "$W/mnt/photos/readme.txt"
"$ZRB" genkey --out-dir "$W/keys" >/dev/null
if [ $USE_S3 = 1 ]; then
  bash test/rig/rgw.sh up
  export AWS_ACCESS_KEY_ID=TESTKEY AWS_SECRET_ACCESS_KEY=TESTSECRET
  BUCKET=zrb-demo-$$
  $BUN -e "import {S3Client,CreateBucketCommand} from '@aws-sdk/client-s3'; await new S3Client({endpoint:'http://127.0.0.1:${ZRB_TEST_RGW_PORT:-7480}',region:'us-east-1',forcePathStyle:true}).send(new CreateBucketCommand({Bucket:'$BUCKET'}))"
  S3="s3: {enabled: true, bucket: $BUCKET, prefix: demo/, region: us-east-1, endpoint: 'http://127.0.0.1:${ZRB_TEST_RGW_PORT:-7480}'}"
else
  S3="s3: {enabled: false}"
fi
cat > "$W/zrb.yaml" <<YAML
base_dir: $W/base
age_public_key: $(cat "$W/keys/zrb_public.key")
signing_key: $W/keys/zrb_signing.key
chunk_size: 2MiB
workers: 2
$S3
tasks:
  - {name: photos, pool: $POOL, dataset: photos, enabled: true}
YAML
set -x
"$ZRB" snapshot --config "$W/zrb.yaml" --task photos --level 0
"$ZRB" backup --config "$W/zrb.yaml" --task photos --level 0
echo "more photos" > "$W/mnt/photos/new.txt"
"$ZRB" snapshot --config "$W/zrb.yaml" --task photos --level 1
"$ZRB" backup --config "$W/zrb.yaml" --task photos --level 1
"$ZRB" list --config "$W/zrb.yaml" --task photos
"$ZRB" restore --config "$W/zrb.yaml" --task photos --target "$POOL/restored" --private-key "$W/keys/zrb_private.key"
zfs mount "$POOL/restored"
set +x
(cd "$W/mnt/photos" && sha256sum holiday.raw readme.txt new.txt) > "$W/src.sum"
(cd "$W/mnt/restored" && sha256sum -c "$W/src.sum")
echo "demo: backup and restore round trip OK ($([ $USE_S3 = 1 ] && echo radosgw || echo local directory))"
