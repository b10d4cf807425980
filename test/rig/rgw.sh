#!/bin/bash
# One-node Ceph (mon + memstore OSD + radosgw, no cephx) on 127.0.0.1 for the tests.
#
#   rgw.sh up      start it, or reuse any S3 server already answering on the port; idempotent
#   rgw.sh down    stop the daemons this script started in ZRB_TEST_RGW_DIR and remove the dir
#   rgw.sh status  exit 0 if an S3 server answers on the port and accepts the test key
#
# Env:
#   ZRB_TEST_RGW_PORT   S3 port                      (default 7480)
#   ZRB_TEST_RGW_DIR    base dir: conf, data, logs   (default /tmp/zrb-rgw)
#   ZRB_TEST_RGW_BYTES  memstore size in bytes       (default 6 GiB; RAM-backed)
#   ZRB_TEST_MON_PORT   mon port                     (default: first free port from 6789)
# Credentials are fixed: TESTKEY / TESTSECRET. Data lives in memory: `down` loses it.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

PORT=${ZRB_TEST_RGW_PORT:-7480}
B=${ZRB_TEST_RGW_DIR:-/tmp/zrb-rgw}
BYTES=${ZRB_TEST_RGW_BYTES:-6442450944}
KEY=TESTKEY
SECRET=TESTSECRET
URL="http://127.0.0.1:$PORT/"
MARK="$B/.zrb-rig"   # present only in dirs this script created; `down` refuses others
C=(-c "$B/ceph.conf")
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

say() { echo "rgw.sh: $*" >&2; }

logs_tail() {
  local f
  for f in "$B"/log/*.log "$B"/log/*.out; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 25 "$f" >&2
  done
}

# On failure: stop what this run started (the dir stays for a look). Logs are shown
# by up() once the last attempt failed.
die() { say "$*"; stop_ours; exit 1; }

# retry TRIES COMMAND...: the ceph CLI, ceph-osd and radosgw now and then talk to
# the fresh mon before they have its monmap and get "wrong fsid" / EPERM
# ("handle_command on fsid 0000..." in the mon log); running them again works.
retry() {
  local n=$1 i; shift
  for ((i = 1; ; i++)); do
    "$@" && return 0
    ((i < n)) || return 1
    echo "rgw.sh: try $i failed: $*" >>"$B/log/daemons.out"
    sleep 1
  done
}

# An S3 server answers: anonymous GET / returns S3 XML (a bucket list or an S3 <Error>).
s3_answers() {
  local body
  body=$(curl -s -m 5 "$URL" 2>/dev/null) || return 1
  [[ "$body" == *"<?xml"* && ( "$body" == *ListAllMyBucketsResult* || "$body" == *"<Error>"* ) ]]
}

# The test key works: a SigV4-signed GET / lists buckets.
key_works() {
  local code
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "x-amz-content-sha256: $EMPTY_SHA" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" "$URL" 2>/dev/null) || return 1
  [ "$code" = 200 ]
}

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "timed out after ${secs}s waiting for $what"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_mon_port() {
  if [ -n "${ZRB_TEST_MON_PORT:-}" ]; then echo "$ZRB_TEST_MON_PORT"; return; fi
  local p
  for p in 6789 6779 6769 6759 6749 6739 6729 6719; do
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free mon port (tried 6789..6719 step 10); set ZRB_TEST_MON_PORT"
}

# Stop daemons recorded by pid files in $B (only in a dir this script created).
stop_ours() {
  [ -f "$MARK" ] || return 0
  local f pid i
  for f in "$B"/client.rgw.a.pid "$B"/osd.*.pid "$B"/mon.a.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -9 "$pid" 2>/dev/null || true; }
    rm -f "$f"
  done
}

ensure_user() {
  key_works && return 0
  if [ -f "$B/ceph.conf" ]; then
    timeout 60 radosgw-admin "${C[@]}" user create --uid=test --display-name=test \
      --access-key="$KEY" --secret="$SECRET" >/dev/null 2>&1 || true
    wait_for 20 "the test key to be accepted" key_works
    return 0
  fi
  say "an S3 server answers on $URL but rejects $KEY/$SECRET, and it is not ours ($B/ceph.conf missing)"
  exit 1
}

up() {
  if s3_answers; then
    ensure_user
    return 0
  fi
  local attempt
  for attempt in 1 2 3; do
    local rc
    # not `(start_cluster) || ...`: that would switch off errexit inside the subshell
    set +e; (start_cluster); rc=$?; set -e
    ((rc == 0)) && return 0
    ((rc == 3)) && exit 1   # not worth retrying
    say "bring-up attempt $attempt failed"
  done
  logs_tail
  exit 1
}

start_cluster() {
  for t in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen curl; do
    command -v "$t" >/dev/null || { say "$t not installed (run test/rig/install-deps.sh)"; exit 1; }
  done
  port_free "$PORT" || { say "port $PORT is taken by something that is not an S3 server"; exit 3; }
  if [ -e "$B" ] && [ ! -f "$MARK" ]; then
    say "$B exists and was not made by this script; refusing to wipe it (set ZRB_TEST_RGW_DIR)"
    exit 3
  fi
  stop_ours   # leftovers of a half-started cluster
  rm -rf "$B"
  mkdir -p "$B"/{mon.a,osd.0,rgw,log,asok}
  touch "$MARK"
  local fsid mon osduuid id
  fsid=$(uuidgen)
  mon=$(pick_mon_port) || exit 1
  cat >"$B/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms_mon_client_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
ms_mon_service_mode = crc
ms_mon_cluster_mode = crc
client mount timeout = 30
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $B
admin socket = $B/asok/\$name.asok
log file = $B/log/\$name.log
pid file = $B/\$name.pid
keyring = /dev/null
[mon]
mon data = $B/mon.\$id
# The mon's data dir is on the host disk; its free-space warnings are not the test's concern.
mon data avail warn = 1
mon data avail crit = 0
[osd]
osd data = $B/osd.\$id
osd objectstore = memstore
memstore device bytes = $BYTES
[client.rgw.a]
rgw data = $B/rgw
rgw frontends = beast endpoint=127.0.0.1:$PORT
# Deleted objects' data is reclaimed by radosgw's garbage collector, by default only after
# 2 hours: a long test run would fill the in-memory OSD. Reclaim within seconds instead.
rgw gc obj min wait = 0
rgw gc processor period = 10
rgw gc processor max time = 10
CONF
  # Daemons get their stdio pointed at files: they must not hold the caller's pipes open.
  local out="$B/log/daemons.out"
  # --addv with an explicit v1 address: `--add` makes any port but 6789 a msgr2 address.
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon]" "$B/monmap" >>"$out" 2>&1 \
    || die "monmaptool failed"
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$B/monmap" </dev/null >>"$out" 2>&1 || die "ceph-mon --mkfs failed"
  ceph-mon "${C[@]}" -i a </dev/null >>"$out" 2>&1 || die "ceph-mon failed to start"
  wait_for 30 "ceph-mon (port $mon) to answer" timeout 10 ceph "${C[@]}" mon stat
  osduuid=$(uuidgen)
  new_osd() { timeout 60 ceph "${C[@]}" osd new "$osduuid" 2>>"$out"; }
  id=$(retry 4 new_osd) || die "ceph osd new failed"
  ceph-osd "${C[@]}" -i "$id" --mkfs --osd-uuid "$osduuid" </dev/null >>"$out" 2>&1 || die "ceph-osd --mkfs failed"
  retry 4 ceph-osd "${C[@]}" -i "$id" </dev/null >>"$out" 2>&1 || die "ceph-osd failed to start"
  osd_up() { timeout 10 ceph "${C[@]}" osd stat 2>/dev/null | grep -q "1 up"; }
  wait_for 30 "the OSD to come up" osd_up
  # user create first: it also creates the default realm/zonegroup/zone that placement add needs
  make_user() {
    timeout 60 radosgw-admin "${C[@]}" user info --uid=test >/dev/null 2>&1 \
      || timeout 60 radosgw-admin "${C[@]}" user create --uid=test --display-name=test \
        --access-key="$KEY" --secret="$SECRET" >>"$out" 2>&1
  }
  retry 4 make_user || die "radosgw-admin user create failed"
  local sc
  for sc in STANDARD_IA ONEZONE_IA INTELLIGENT_TIERING GLACIER GLACIER_IR DEEP_ARCHIVE; do
    retry 3 timeout 60 radosgw-admin "${C[@]}" zonegroup placement add --rgw-zonegroup default \
      --placement-id default-placement --storage-class "$sc" >>"$out" 2>&1 \
      || die "zonegroup placement add $sc failed"
    retry 3 timeout 60 radosgw-admin "${C[@]}" zone placement add --rgw-zone default \
      --placement-id default-placement --storage-class "$sc" \
      --data-pool default.rgw.buckets.data >>"$out" 2>&1 || die "zone placement add $sc failed"
  done
  retry 3 radosgw "${C[@]}" -n client.rgw.a </dev/null >>"$out" 2>&1 || die "radosgw failed to start"
  wait_for 60 "radosgw to answer on $URL" s3_answers
  wait_for 20 "radosgw to accept $KEY" key_works
}

down() {
  if [ ! -f "$MARK" ]; then
    [ -e "$B" ] && say "$B was not made by this script; leaving it alone"
    return 0
  fi
  stop_ours
  rm -rf "$B"
}

status() {
  if s3_answers && key_works; then
    echo "rgw: S3 answers on $URL and accepts $KEY$([ -f "$MARK" ] && echo " (rig cluster in $B)")"
  else
    echo "rgw: no working S3 server on $URL"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
