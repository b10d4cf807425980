#!/usr/bin/env bash
# 14-systemd: what a NAS owner does, on a guest booted with systemd as PID 1, following
# docs/install-nas.md command by command (each doc command is checked to be in the doc
# verbatim and run in a shell without this scenario's environment): install the binary,
# keys on a "stick", /etc/zrb/config.yaml and /etc/zrb/env (0600), `zrb check`,
# `zrb systemd install`. Then, under the installed, hardened units:
#   - `systemctl start zrb-backup@photos:0` and `:1`: Result=success/status 0, the journal of
#     the run shows its lines, the backups are listed and restore (step 8) equal to the source,
#     no send hold, lock or state left, zrb's base holds exactly on the heads;
#   - the native crypto addons are mapped from base_dir/tmp inside the sandbox, and the system's
#     OpenSSL libcrypto (the payload cipher, through bun:ffi, under the system call filter);
#   - `systemctl stop` in the middle of a long (throttled) full backup: zrb exits 143 by
#     itself within TimeoutStopSec, state saved, holds and lock released; the next start
#     says "resuming" and completes the same backup id;
#   - the installed timer fires by itself (a drop-in schedule, as the doc says), and with
#     Persistent=true a run missed while the timer was stopped happens when it comes back;
#   - `systemd-analyze security` exposure of the service (recorded, must stay "OK" or better);
#   - the daily prune and weekly rotating verify units (a task with `retention`) run under the
#     same sandbox: success/0, their summary in the journal; the metrics file (outside base_dir,
#     in node_exporter's directory) holds backup, prune and verify series with exit code 0;
#   - the monthly drill unit (with drill.private_key set for it) under the same sandbox: a
#     throwaway pool under base_dir, the source compared, 0 differ, no pool left, its metrics;
#   - a failed run starts zrb-failure@<the unit>.service, whose line is in the journal.
# Each check is one function; main at the bottom lists them in order.
# boot: systemd
# needs:
source ./lib.sh

DOC=./install-nas.md
NTASK=photos
NPOOL=tank
NDS=$NPOOL/home/photos
CFG=/etc/zrb/config.yaml
BASE=/var/lib/zrb
RUNDIR=$BASE/run/$NDS
NPREFIX=zrb/
USB=/media/usb-stick              # the key stick of doc step 2 ("another machine")
OTHER=/root/other-machine         # doc step 8 runs here, with a copy of the config
SCRATCH=scratch                   # the restore-test pool of doc step 8 (file-backed)
LOCAL_DROPIN=zz-local.conf        # the doc's per-instance schedule drop-in
PROM_DIR=/var/lib/node_exporter/textfile_collector
PROM=$PROM_DIR/zrb.prom           # monitoring.metrics_file, as docs/monitoring.md shows it
NOTES=()

note()  { NOTES+=("$*"); say "ok: $*"; }
svc()   { echo "zrb-backup@$NTASK:$1.service"; }
tmr()   { echo "zrb-backup@$NTASK:$1.timer"; }
TASK_TIMERS=("zrb-prune@$NTASK.timer" "zrb-verify@$NTASK.timer")
prop()  { systemctl show -p "$2" --value "$1"; }          # prop UNIT PROPERTY
epoch() { date +%s; }
since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }   # since START (date +%s.%N)

# doc DIR LINE...: lines docs/install-nas.md shows verbatim, run in one shell in DIR with an
# empty environment (PATH, HOME and DOC_ENV only: nothing of this scenario's AWS_* leaks in)
DOC_ENV=()
doc() {
  local dir=$1 l script=""; shift
  for l in "$@"; do doc_shows "$l"; script+="$l"$'\n'; done
  say "+ (docs/install-nas.md, in $dir)"; printf '      %s\n' "$@"
  (cd "$dir" && env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 "${DOC_ENV[@]}" bash -euo pipefail -c "$script")
}
doc_shows() { grep -qF -- "$1" "$DOC" || fail "docs/install-nas.md does not show (verbatim): $1"; }

# ------------------------------------------------------------------ the NAS

check_pid1() {
  [ "$(ps -p 1 -o comm=)" = systemd ] || fail "PID 1 is $(ps -p 1 -o comm=), not systemd (boot with ZRB_VM_INIT=systemd)"
  SYSTEMD_VERSION=$(systemctl --version | awk 'NR == 1 {print $2}')
  [ -d /run/systemd/system ] || fail "no /run/systemd/system"
  say "systemd $SYSTEMD_VERSION is PID 1, system state $(systemctl is-system-running || true)"
}

nas_pool() {
  run zpool create -f -o ashift=12 -O compression=lz4 -O atime=off "$NPOOL" /dev/vdb
  run zfs create -p "$NDS"
  local m; m=$(mountpoint_of "$NDS")
  mkdir -p "$m/2024/summer" "$m/2025" "$m/albums"
  for i in 1 2 3 4; do head -c $((1024 * 1024 + i * 4099)) /dev/urandom > "$m/2024/summer/IMG_$i.jpg"; done
  head -c 3000000 /dev/urandom > "$m/2025/VID_1.mp4"
  printf 'family\n' > "$m/albums/list name ü.txt"
  ln -s ../2024/summer/IMG_1.jpg "$m/albums/cover.jpg"
  # the restore-test pool of doc step 8 ("scratch/photos-test"), on a file
  truncate -s 1G /var/tmp/scratch.img
  run zpool create -f -O atime=off "$SCRATCH" /var/tmp/scratch.img
}

# ------------------------------------------------------------------ docs/install-nas.md 1-6

doc_binary() {            # 1. the binary and SHA256SUMS "downloaded" next to each other
  local dl=$W/download
  mkdir -p "$dl"; cp "$ZRB" "$dl/zrb-linux-x64"; cp ./SHA256SUMS "$dl/"; rm -f "$ZRB"
  doc "$dl" 'sha256sum --ignore-missing -c SHA256SUMS' 'install -m 0755 zrb-linux-x64 /usr/local/bin/zrb' 'zrb --version'
  [ "$(stat -c %a "$ZRB")" = 755 ] || fail "$ZRB has mode $(stat -c %a "$ZRB")"
}

doc_keys() {              # 2. on "another machine": the stick
  mkdir -p "$USB"
  doc / 'zrb genkey --out-dir /media/usb-stick'
  [ "$(stat -c %a "$USB/zrb_private.key")" = 600 ] || fail "private key mode $(stat -c %a "$USB/zrb_private.key")"
}

doc_config() {            # 3. the doc's config with this bucket and endpoint (STANDARD only: radosgw)
  local pub; pub=$(grep -o 'age1[0-9a-z]*' "$USB/zrb_public.key" | head -1)
  install -m 0600 "$USB/zrb_signing.key" /etc/zrb-signing.key.tmp   # step 2: the signing key to the NAS
  cat > "$W/nas-config.yaml" <<YAML
base_dir: /var/lib/zrb
age_public_key: $pub
signing_key: /etc/zrb/signing.key
monitoring:
  metrics_file: $PROM
chunk_size: 1MiB                    # small parts: a throttled full backup has many
workers: 2
s3:
  enabled: true
  bucket: $ZRB_BUCKET
  prefix: $NPREFIX
  region: ${AWS_REGION:-us-east-1}
  endpoint: $S3_ENDPOINT
  storage_class:
    manifest: STANDARD
    backup_data: [STANDARD, STANDARD]
tasks:
  - name: $NTASK
    pool: $NPOOL
    dataset: ${NDS#*/}
    enabled: true
    retention: {keep_daily: 7, keep_weekly: 4}
YAML
  DOC_ENV=("EDITOR=cp $W/nas-config.yaml")     # "$EDITOR /etc/zrb/config.yaml" = write it
  doc / 'install -d -m 0700 /etc/zrb' '$EDITOR /etc/zrb/config.yaml && chmod 0600 /etc/zrb/config.yaml'
  DOC_ENV=()
  [ "$(stat -c %a /etc/zrb)/$(stat -c %a "$CFG")" = 700/600 ] || fail "/etc/zrb or $CFG has the wrong mode"
  mv /etc/zrb-signing.key.tmp /etc/zrb/signing.key
  mkdir -p "$PROM_DIR"      # node_exporter's --collector.textfile.directory (zrb never creates it)
}

doc_credentials() {       # 4.
  doc / 'install -m 0600 /dev/null /etc/zrb/env'
  doc_shows "cat > /etc/zrb/env <<'EOF'"
  printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > /etc/zrb/env
  [ "$(stat -c %a /etc/zrb/env)" = 600 ] || fail "/etc/zrb/env has mode $(stat -c %a /etc/zrb/env), want 600"
}

doc_check() {             # 5.
  doc / 'set -a; . /etc/zrb/env; set +a' 'zrb check --config /etc/zrb/config.yaml'
}

# The doc's way to give one timer another schedule: a drop-in sorting after zrb-schedule.conf.
# Until the timer checks, both timers are pinned far away (written before the install, which
# must leave it alone), so the real Mon..Sat 02:30 / Sun 02:00 schedules cannot fire mid-test.
set_schedule() {          # set_schedule TIMER CALENDAR
  local d=/etc/systemd/system/$1.d
  mkdir -p "$d"
  printf '[Timer]\nOnCalendar=\nOnCalendar=%s\nRandomizedDelaySec=0\nAccuracySec=1s\n' "$2" > "$d/$LOCAL_DROPIN"
}

doc_timers() {            # 6.
  doc_shows "/etc/systemd/system/zrb-backup@photos:1.timer.d/$LOCAL_DROPIN"
  set_schedule "$(tmr 0)" "2099-01-01 00:00:00"; set_schedule "$(tmr 1)" "2099-01-01 00:00:00"
  local t
  for t in "${TASK_TIMERS[@]}"; do set_schedule "$t" "2099-01-01 00:00:00"; done
  local out
  out=$(doc / 'zrb systemd install --config /etc/zrb/config.yaml --dry-run')
  grep -q '^systemctl enable --now' <<<"$out" || fail "install --dry-run shows no systemctl enable: $out"
  [ ! -e /etc/systemd/system/zrb-backup@.service ] || fail "--dry-run wrote zrb-backup@.service"
  doc / 'zrb systemd install --config /etc/zrb/config.yaml'
  out=$(doc / "systemctl list-timers 'zrb-*'")
  echo "$out"
  local l
  for l in 0 1; do
    grep -qF "$(tmr "$l")" <<<"$out" || fail "systemctl list-timers does not show $(tmr "$l")"
    [ "$(systemctl is-enabled "$(tmr "$l")")" = enabled ] && [ "$(systemctl is-active "$(tmr "$l")")" = active ] \
      || fail "$(tmr "$l") is not enabled and active"
    [ -f "/etc/systemd/system/$(tmr "$l").d/$LOCAL_DROPIN" ] || fail "the install removed the local drop-in of $(tmr "$l")"
  done
  for t in "${TASK_TIMERS[@]}"; do
    grep -qF "$t" <<<"$out" || fail "systemctl list-timers does not show $t"
    [ "$(systemctl is-enabled "$t")" = enabled ] && [ "$(systemctl is-active "$t")" = active ] || fail "$t is not enabled and active"
  done
  [ -d "$BASE/tmp" ] || fail "install did not create $BASE/tmp"
  note "installed per docs/install-nas.md 1-6 (4 timers enabled: backups :0 :1, prune, verify; local drop-ins kept)"
}

# ------------------------------------------------------------------ runs under the units

holds_of() {              # holds_of FS: "SNAPSHOT<TAB>TAG<TAB>TIME" of every snapshot of FS
  local s; s=$(zfs list -H -t snapshot -o name -d 1 "$1")
  [ -z "$s" ] || zfs holds -H $s
}
newest_snap() { zfs list -H -t snapshot -o name -s createtxg -d 1 "$NDS" | grep "@zrb_level$1_" | tail -1 | cut -d@ -f2; }
status_json() { "$ZRB" status --config "$CFG" --task "$NTASK" --json; }
journal_of() {            # journal_of UNIT: the lines of its last run (this invocation only)
  local inv; inv=$(prop "$1" InvocationID)
  [ -n "$inv" ] || fail "$1 has no InvocationID"
  journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$inv"
}

expect_unit() {           # expect_unit UNIT RESULT STATUS: how its last main process ended
  local r s c
  r=$(prop "$1" Result); s=$(prop "$1" ExecMainStatus); c=$(prop "$1" ExecMainCode)
  if [ "$r" != "$2" ] || [ "$s" != "$3" ] || [ "$c" != 1 ]; then
    journal_of "$1" | tail -30 >&2 || true
    fail "$1: Result=$r ExecMainStatus=$s ExecMainCode=$c, want $2/$3 and code 1 (exited, not killed)"
  fi
}

# no_leftovers: no lock, no state, no zfs send, no send hold; zrb's base hold exactly on the heads
no_leftovers() {
  [ ! -e "$RUNDIR/zrb.lock" ] || fail "lock left: $RUNDIR/zrb.lock: $(cat "$RUNDIR/zrb.lock")"
  [ ! -e "$RUNDIR/backup_state.yaml" ] || fail "state left: $RUNDIR/backup_state.yaml"
  ! pgrep -af "zfs send" || fail "a zfs send is still running"
  local holds st heads held
  holds=$(holds_of "$NDS")
  ! awk -F'\t' '$2 != "zrb"' <<<"$holds" | grep . || fail "holds other than zrb's base hold: $holds"
  st=$(status_json)
  jq -e '.[0].running == null and .[0].staleLock == false and .[0].interrupted == null' <<<"$st" >/dev/null \
    || fail "zrb status is not idle: $st"
  heads=$(jq -r '.[0].heads[].snapshot' <<<"$st" | LC_ALL=C sort -u)
  held=$(awk -F'\t' '{print $1}' <<<"$holds" | LC_ALL=C sort -u)
  [ "$heads" = "$held" ] || fail "zrb holds on [$held], the heads are [$heads]"
}

# unit_backup LEVEL [doc]: start zrb-backup@photos:LEVEL and wait; check it, its journal and the head
unit_backup() {
  local l=$1 u snap expect log id
  u=$(svc "$l")
  tree_manifest "$(mountpoint_of "$NDS")" > "$W/expect.txt"   # nothing changes until its snapshot
  if [ "${2:-}" = doc ]; then doc / "systemctl start zrb-backup@photos:$l"; else run systemctl start "$u"; fi
  expect_unit "$u" success 0
  snap=$(newest_snap "$l")
  [ -n "$snap" ] || fail "$u ran but there is no zrb_level${l}_ snapshot"
  record_snap "$snap"
  log=$(journal_of "$u")
  grep -qxF "$NDS@$snap" <<<"$log" || fail "the journal of $u does not show the snapshot $snap (ExecStartPre): $log"
  grep -qE "backup [^ ]+: level $l $NDS@$snap" <<<"$log" || fail "the journal of $u has no summary line for $snap: $log"
  id=$(jq -r --arg l "$l" '.[0].heads[] | select(.level == ($l | tonumber)) | .backupId' <<<"$(status_json)")
  [ -n "$id" ] && grep -qF "backup $id:" <<<"$log" || fail "the level-$l head ($id) is not the backup in the journal of $u"
  no_leftovers
  LAST_ID=$id
  note "systemctl start $u: success/0, $snap is head $id, journal shows the run"
}
record_snap() { cp "$W/expect.txt" "$W/tree@$1.txt"; }

addons_in_tmpdir() {      # the addons the sandboxed run used were unpacked into base_dir/tmp
  local n; n=$(find "$BASE/tmp" -maxdepth 1 -name '*.node' | wc -l)
  [ "$n" -ge 1 ] || fail "no native addon (*.node) in $BASE/tmp after a unit run: $(ls -la "$BASE/tmp")"
}

change_photos() {
  local m; m=$(mountpoint_of "$NDS")
  head -c 700000 /dev/urandom > "$m/2025/IMG_new.jpg"
  printf 'edited\n' >> "$m/albums/list name ü.txt"
  rm "$m/2024/summer/IMG_4.jpg"
  chmod 600 "$m/2025/VID_1.mp4"
}

# doc step 8, on the "other machine": plan, restore, verify, compare with SNAP, destroy
doc_restore() {           # doc_restore SNAP
  mkdir -p "$OTHER"; cp "$CFG" "$OTHER/config.yaml"
  local env='set -a; . /etc/zrb/env; set +a' key='--private-key /media/usb-stick/zrb_private.key' t=$SCRATCH/photos-test
  doc "$OTHER" "$env" 'zrb list    --config config.yaml --task photos' \
    "zrb restore --config config.yaml --task photos $key --target scratch/photos-test --plan"
  ! zfs list "$t" >/dev/null 2>&1 || fail "restore --plan created $t"
  doc "$OTHER" "$env" "zrb restore --config config.yaml --task photos $key --target scratch/photos-test" \
    "zrb verify  --config config.yaml --task photos $key --sample 2"
  ensure_mounted "$t"
  tree_manifest "$(mountpoint_of "$t")" > "$W/restored.txt"
  compare_files "$W/tree@$1.txt" "$W/restored.txt" "files of $t and $NDS@$1"
  [ "$(guid_of "$t@$1")" = "$(guid_of "$NDS@$1")" ] || fail "guid of $t@$1 differs from $NDS@$1"
  doc / 'zfs destroy -r scratch/photos-test'
  note "doc step 8: restore of $1 equal (files + guid), verify --sample 2 ok"
}

# ------------------------------------------------------------------ stop and resume

state_id() { [ ! -f "$RUNDIR/backup_state.yaml" ] || sed -n 's/^backupId: *//p' "$RUNDIR/backup_state.yaml" | tr -d '"'; }
level0_ids() { s3_keys "$ZRB_BUCKET" "${NPREFIX}data/$NDS/level0/" | awk '{print $1}' | awk -F/ '{print $(NF-1)}' | sort -u; }
throttle()   { run tc qdisc add dev eth0 root tbf rate 4mbit burst 32kbit latency 1s; }
unthrottle() { tc qdisc del dev eth0 root 2>/dev/null || true; }

# a long full backup (16 MiB more, uplink at 4 Mbit/s), stopped once >= 3 parts are stored
stop_mid_backup() {
  local m u i id parts pid maps t0 secs out timeout_us
  m=$(mountpoint_of "$NDS"); u=$(svc 0)
  IDS_BEFORE=$(level0_ids)
  for i in 1 2 3 4; do head -c $((4 * 1024 * 1024 + i)) /dev/urandom > "$m/2025/raw-$i.dng"; done
  tree_manifest "$m" > "$W/expect.txt"
  trap unthrottle EXIT; throttle
  run systemctl start --no-block "$u"
  for (( i = 0; i < 60; i++ )); do [ "$(prop "$u" ActiveState)" = activating ] && break; sleep 0.5; done
  for (( i = 0; i < 600; i++ )); do
    [ "$(prop "$u" ActiveState)" = activating ] || { journal_of "$u" | tail -20; fail "$u ended before it could be stopped"; }
    id=$(state_id)
    if [ -n "$id" ]; then
      parts=$(s3_keys "$ZRB_BUCKET" "${NPREFIX}data/$NDS/level0/$id/" | grep -c . || true)
      [ "$parts" -ge 3 ] && break
    fi
    sleep 0.5
  done
  [ "${parts:-0}" -ge 3 ] || fail "no 3 parts of the new full backup stored within 300 s"
  # the addons the sandboxed process runs on are mapped from base_dir/tmp (exec allowed there)
  pid=$(prop "$u" MainPID)
  maps=$(grep -o "$BASE/tmp/[^ ]*\.node" "/proc/$pid/maps" | sort -u || true)
  [ -n "$maps" ] || fail "zrb (pid $pid) in $u has no native addon mapped from $BASE/tmp (wasm/JS fallback?)"
  say "native addons mapped by pid $pid: $(tr '\n' ' ' <<<"$maps")"
  note "native crypto addons loaded from $BASE/tmp inside the sandbox ($(grep -c . <<<"$maps"))"
  # the payload cipher is the system's OpenSSL, through bun:ffi, under the unit's system call filter
  grep -q 'libcrypto\.so' "/proc/$pid/maps" || fail "zrb (pid $pid) in $u has no libcrypto mapped: the payload cipher is not OpenSSL's inside the sandbox"
  note "OpenSSL's libcrypto mapped for the payload cipher inside the sandbox"
  t0=$(date +%s.%N)
  run systemctl stop "$u"
  secs=$(since "$t0")
  unthrottle; trap - EXIT
  timeout_us=$(prop "$u" TimeoutStopUSec)
  expect_unit "$u" exit-code 143
  [ "$(prop "$u" ActiveState)" = failed ] || fail "$u is $(prop "$u" ActiveState) after the stop, want failed (status 143)"
  out=$(journal_of "$u")
  grep -q 'interrupted by SIGTERM' <<<"$out" || fail "the journal of $u does not say it was interrupted by SIGTERM: $(tail -5 <<<"$out")"
  [ "$(state_id)" = "$id" ] || fail "the resume state of $id is not saved (state says '$(state_id)')"
  [ ! -e "$RUNDIR/zrb.lock" ] || fail "the lock is left after the stop"
  ! holds_of "$NDS" | awk -F'\t' '$2 == "zrb-send"' | grep . || fail "send holds left after the stop"
  ! pgrep -af "zfs send" || fail "zfs send still running after the stop"
  jq -e --arg id "$id" '.[0].interrupted.backupId == $id and .[0].interrupted.partsDone >= 3 and .[0].running == null' \
    <<<"$(status_json)" >/dev/null || fail "zrb status does not show $id as interrupted: $(status_json)"
  STOP_NOTE="stop after $parts parts: exit 143 in ${secs}s (TimeoutStopSec $timeout_us)"
  STOP_ID=$id
  note "$STOP_NOTE, state of $id kept, no lock, no send hold"
}

resume_after_stop() {
  local u log snap ids
  u=$(svc 0)
  snap=$(sed -n 's/^ *name: *//p' "$RUNDIR/backup_state.yaml" | head -1 | tr -d '"'); snap=${snap#*@}
  record_snap "$snap"
  run systemctl start "$u"
  expect_unit "$u" success 0
  log=$(journal_of "$u")
  grep -qF "resuming interrupted backup $STOP_ID" <<<"$log" || fail "the journal of $u does not say 'resuming interrupted backup $STOP_ID': $log"
  grep -qF "backup $STOP_ID: level 0 $NDS@$snap" <<<"$log" || fail "$u did not finish $STOP_ID of $snap: $log"
  jq -e --arg id "$STOP_ID" '.[0].heads[] | select(.level == 0) | .backupId == $id' <<<"$(status_json)" >/dev/null \
    || fail "the level-0 head is not the resumed $STOP_ID"
  ids=$(level0_ids)
  [ "$ids" = "$(printf '%s\n%s\n' "$IDS_BEFORE" "$STOP_ID" | grep . | sort -u)" ] \
    || fail "level-0 backup ids in the bucket: $(tr '\n' ' ' <<<"$ids"), want those before the stop ($(tr '\n' ' ' <<<"$IDS_BEFORE")) and $STOP_ID"
  no_leftovers
  note "next start resumed $STOP_ID (journal: resuming) and completed it"
}

# ------------------------------------------------------------------ the timers

wait_new_run() {          # wait_new_run UNIT OLD_INVOCATION SECONDS: a new run started and ended
  local u=$1 old=$2 i
  for (( i = 0; i < $3 * 2; i++ )); do
    if [ "$(prop "$u" InvocationID)" != "$old" ] && [ "$(prop "$u" ActiveState)" != activating ]; then return 0; fi
    sleep 0.5
  done
  fail "$u did not run within $3 s (timer: $(systemctl list-timers --all --no-pager "$(tmr 1)" | sed -n 2p))"
}

started_at_or_after() {   # started_at_or_after UNIT PROPERTY TIME
  local v; v=$(prop "$1" "$2")
  [ -n "$v" ] && [ "$v" != n/a ] && [ "$(date -d "$v" +%s)" -ge "$(date -d "$3" +%s)" ] || fail "$1 $2 is '$v', not at or after $3"
}

timer_fires() {           # the installed :1 timer, scheduled 15 s ahead by the doc's drop-in
  local t u inv at cal
  t=$(tmr 1); u=$(svc 1)
  [ "$(prop "$u" ActiveState)" != activating ] || fail "$u is running before its timer was set"
  inv=$(prop "$u" InvocationID)
  tree_manifest "$(mountpoint_of "$NDS")" > "$W/expect.txt"
  at=$(date -d "@$(( $(epoch) + 15 ))" '+%Y-%m-%d %H:%M:%S')
  set_schedule "$t" "$at"; run systemctl daemon-reload
  cal=$(prop "$t" TimersCalendar)
  grep -qF "$at" <<<"$cal" && [ "$(grep -o 'OnCalendar=' <<<"$cal" | wc -l)" -eq 1 ] \
    || fail "$t calendars after the drop-in: $cal (want only $at)"
  systemctl list-timers --no-pager "$t"
  wait_new_run "$u" "$inv" 300
  expect_unit "$u" success 0
  # started by the timer, at its time: the timer's last trigger and the run's start are not before it
  started_at_or_after "$t" LastTriggerUSec "$at"
  started_at_or_after "$u" ExecMainStartTimestamp "$at"
  local snap; snap=$(newest_snap 1); record_snap "$snap"
  grep -qE "backup [^ ]+: level 1 $NDS@$snap" <<<"$(journal_of "$u")" || fail "the timer's run of $u did not back up $snap"
  no_leftovers
  note "$t fired by itself at $at and backed up $snap"
}

missed_run_catches_up() { # Persistent=true: a run due while the timer was stopped happens on start
  local t u inv at i
  t=$(tmr 1); u=$(svc 1)
  run systemctl stop "$t"
  inv=$(prop "$u" InvocationID)
  at=$(date -d "@$(( $(epoch) + 5 ))" '+%Y-%m-%d %H:%M:%S')
  set_schedule "$t" "$at"; run systemctl daemon-reload
  for (( i = 0; i < 30; i++ )); do [ "$(epoch)" -ge "$(date -d "$at" +%s)" ] && break; sleep 1; done
  sleep 2
  [ "$(prop "$u" InvocationID)" = "$inv" ] || fail "$u ran while its timer was stopped"
  run systemctl start "$t"
  wait_new_run "$u" "$inv" 300
  expect_unit "$u" success 0
  record_snap "$(newest_snap 1)"
  no_leftovers
  note "Persistent=true: the run missed at $at happened when the timer started again"
}

# Without the local drop-ins the generated schedules are in force. (The restart: a timer whose
# calendar has no future occurrence, like the one-shot time above, is "elapsed" and a
# daemon-reload does not wake it; the real schedules always have a next time.)
real_schedule_back() {
  local l cal t
  rm -f "/etc/systemd/system/$(tmr 0).d/$LOCAL_DROPIN" "/etc/systemd/system/$(tmr 1).d/$LOCAL_DROPIN"
  for t in "${TASK_TIMERS[@]}"; do rm -f "/etc/systemd/system/$t.d/$LOCAL_DROPIN"; done
  run systemctl daemon-reload
  run systemctl restart "$(tmr 0)" "$(tmr 1)" "${TASK_TIMERS[@]}"
  systemctl list-timers --no-pager 'zrb-*'
  for l in 0 1; do
    cal=$(prop "$(tmr "$l")" TimersCalendar)
    [ "$(grep -o 'OnCalendar=' <<<"$cal" | wc -l)" -eq 1 ] || fail "$(tmr "$l") has several calendars: $cal"
    [ "$(prop "$(tmr "$l")" SubState)" = waiting ] || fail "$(tmr "$l") is $(prop "$(tmr "$l")" SubState), not waiting"
    say "$(tmr "$l"): $cal"
  done
  grep -q 'Sun \*-\*-\* 02:00:00' <<<"$(prop "$(tmr 0)" TimersCalendar)" || fail "$(tmr 0) is not on Sundays 02:00"
  grep -q 'Mon..Sat \*-\*-\* 02:30:00' <<<"$(prop "$(tmr 1)" TimersCalendar)" || fail "$(tmr 1) is not Mon..Sat 02:30"
  grep -q '\*-\*-\* 06:00:00' <<<"$(prop "${TASK_TIMERS[0]}" TimersCalendar)" || fail "${TASK_TIMERS[0]} is not daily at 06:00: $(prop "${TASK_TIMERS[0]}" TimersCalendar)"
  grep -q 'Wed \*-\*-\* 12:00:00' <<<"$(prop "${TASK_TIMERS[1]}" TimersCalendar)" || fail "${TASK_TIMERS[1]} is not Wednesdays 12:00: $(prop "${TASK_TIMERS[1]}" TimersCalendar)"
}

# ------------------------------------------------------------------ prune, verify, metrics, OnFailure

metric() {                # metric NAME [LEVEL]: the value of NAME{task=photos,…[,level=LEVEL]} in the textfile
  local sel="task=\"$NTASK\",pool=\"$NPOOL\",dataset=\"${NDS#*/}\""
  [ -z "${2:-}" ] || sel+=",level=\"$2\""
  awk -v n="$1{$sel}" 'index($0, n " ") == 1 {print $2}' "$PROM"
}

# the daily prune and the weekly rotating verify, started as their timers would
unit_prune_verify() {
  local u log
  u=zrb-prune@$NTASK.service
  run systemctl start "$u"
  expect_unit "$u" success 0
  log=$(journal_of "$u")
  grep -qE "prune of $NDS: deleted 0 backup\(s\)" <<<"$log" || fail "the journal of $u has no prune summary (keep_daily 7 keeps both backups): $log"
  u=zrb-verify@$NTASK.service
  run systemctl start "$u"
  expect_unit "$u" success 0
  log=$(journal_of "$u")
  grep -qE "rotation: [0-9]+ of [0-9]+ part\(s\) checked" <<<"$log" || fail "the journal of $u has no rotation summary: $log"
  no_leftovers
  note "zrb-prune@ and zrb-verify@ (--rotate) ran in the sandbox: success/0"
}

# the monthly drill, started as its timer would, in the same sandbox as the other units: a pool
# on a sparse file under base_dir/drill, the source read through .zfs/snapshot, all destroyed.
# The doc's NAS has no private key (it only encrypts); for this run the config names the stick's.
unit_drill() {
  local u=zrb-drill@$NTASK.service log t0
  cp "$CFG" "$W/config.before-drill"
  printf 'drill:\n  private_key: %s\n' "$USB/zrb_private.key" >> "$CFG"
  # No timer of this instance is enabled (the doc's NAS has no drill.private_key), so systemd
  # unloads the unit once it ends: read its outcome from systemctl's exit code and the journal.
  t0=$(date '+%Y-%m-%d %H:%M:%S')
  say "+ systemctl start $u"
  systemctl start "$u" || { journalctl --no-pager -o cat -u "$u" --since "$t0" | tail -30 >&2; fail "$u failed"; }
  log=$(journalctl --no-pager -o cat -u "$u" --since "$t0")
  grep -qE "drill: [0-9]+ files compared, 0 differ" <<<"$log" || fail "the journal of $u has no drill line with 0 differ: $log"
  ! grep -q "no source compared" <<<"$log" || fail "$u compared no source (the snapshot is on this host): $log"
  ! zpool list -H -o name | grep '^zrbdrill' || fail "a drill pool is left after $u"
  [ -n "$(metric zrb_drill_last_success_timestamp_seconds)" ] || fail "no zrb_drill_last_success_timestamp_seconds in $PROM after $u"
  cp "$W/config.before-drill" "$CFG"
  no_leftovers
  note "zrb-drill@ ran in the sandbox: $(grep -oE 'drill: [0-9]+ files compared, 0 differ' <<<"$log"), no pool left, metrics written"
}

metrics_written() {       # written by the sandboxed units, outside base_dir
  [ -f "$PROM" ] || fail "no metrics file $PROM after the unit runs (ReadWritePaths of its directory?)"
  [ "$(stat -c %a "$PROM")" = 644 ] || fail "$PROM has mode $(stat -c %a "$PROM"), want 644"
  cat "$PROM"
  local m v
  for m in "zrb_backup_last_exit_code 0" "zrb_backup_last_exit_code 1" "zrb_prune_last_exit_code" "zrb_verify_last_exit_code"; do
    v=$(metric $m)
    [ "$v" = 0 ] || fail "$m in $PROM is '$v', want 0"
  done
  v=$(metric zrb_backup_last_success_timestamp_seconds 1)
  [ -n "$v" ] && [ $(( $(epoch) - ${v%.*} )) -lt 3600 ] || fail "zrb_backup_last_success_timestamp_seconds of level 1 is '$v'"
  note "metrics file in $PROM_DIR written by the units: backup :0 :1, prune, verify all exit 0"
}

on_failure() {            # a failed run starts zrb-failure@<that unit>.service: one journal line
  local u=zrb-backup@nosuch:1.service hook i out
  hook="zrb-failure@$u.service"
  ! systemctl start "$u" 2>/dev/null || fail "$u (a task not in the config) succeeded"
  [ "$(prop "$u" ActiveState)" = failed ] || fail "$u is $(prop "$u" ActiveState), want failed"
  for (( i = 0; i < 240; i++ )); do   # up to 120 s: the VM shares the CPU with bun test
    out=$(journal_of "$hook" 2>/dev/null || true)
    grep -qF "zrb: $u failed; see journalctl -u $u" <<<"$out" && break
    sleep 0.5
  done
  grep -qF "zrb: $u failed; see journalctl -u $u" <<<"$out" || fail "$hook did not log the failure of $u: '$out'"
  [ "$(prop "$hook" Result)" = success ] || fail "$hook: Result=$(prop "$hook" Result)"
  run systemctl reset-failed "$u"
  note "a failed $u started $hook (journal: \"zrb: $u failed; …\")"
}

# ------------------------------------------------------------------ the sandbox's rating

exposure() {
  local out line
  out=$(systemd-analyze security --no-pager "$(svc 1)")
  echo "$out"
  line=$(grep 'Overall exposure level' <<<"$out")
  EXPOSURE=$(grep -oE '[0-9]+\.[0-9]+ [A-Z]+' <<<"$line" | head -1)
  case ${EXPOSURE#* } in SAFE|OK) ;; *) fail "exposure of $(svc 1) is '$EXPOSURE', want OK or SAFE: $line" ;; esac
  note "systemd-analyze security: $EXPOSURE"
}

# ------------------------------------------------------------------ main

check_pid1
# debugging on a VM left by `vm/run.sh --keep 14`: bash 14-systemd.sh FUNCTION... runs just those
if [ $# -gt 0 ]; then for f in "$@"; do "$f"; done; exit 0; fi
nas_pool
doc_binary
doc_keys
doc_config
doc_credentials
doc_check
doc_timers
unit_backup 0 doc
addons_in_tmpdir
change_photos
unit_backup 1
unit_prune_verify
unit_drill
metrics_written
on_failure
stop_mid_backup
resume_after_stop
timer_fires
missed_run_catches_up
doc_restore "$(newest_snap 1)"
real_schedule_back
exposure
printf '  - %s\n' "${NOTES[@]}"
result "systemd $SYSTEMD_VERSION as PID 1: docs/install-nas.md followed, :0 and :1 success/0 and restored equal; $STOP_NOTE, resumed; timer fired, missed run caught up; prune, verify, metrics and OnFailure ok; exposure $EXPOSURE"
