#!/usr/bin/env bash
# 11-monitoring: a backup on OpenZFS is never silent. Level 0 of 12 MiB with
# --progress-interval 1s and --bwlimit 4MiB/s prints a start line with the
# `zfs send -nP` estimate and progress lines with ETA; a level 1 with --json emits
# start (estimate from zfs send -nP, within 15 % or 64 KiB of what was sent),
# progress, part and done events; the Prometheus textfile gets the backup's series
# (0644); a loopback listener in the guest (perl, 127.0.0.1 only, exits by itself
# after 300 s) receives /start then the ping URL, with the credentials as a Basic
# header.
# needs: 01
source ./lib.sh

MDS=$POOL/mon
MCONF=$W/mon.yaml
PROM_DIR=/var/lib/node_exporter/textfile_collector
PROM=$PROM_DIR/zrb.prom
PINGS=/tmp/zrb-pings.log
PORT=8089

zfs list -H "$MDS" >/dev/null 2>&1 && run zfs destroy -r "$MDS"
run zfs create "$MDS"
head -c $((12 * 1024 * 1024)) /dev/urandom > "$(mountpoint_of "$MDS")/random-12m"
write_config "$MCONF" /var/lib/zrb-mon mon "$MDS" 4MiB 2
mkdir -p "$PROM_DIR"; rm -f "$PROM" "$PINGS" "$PINGS.ready"
cat >> "$MCONF" <<YAML
monitoring:
  metrics_file: $PROM
  ping_url: http://hc:pw-s3cret@127.0.0.1:$PORT/ping/uuid-vm
YAML

# the ping listener: one line per request, "REQUEST-LINE|Authorization"
perl -MIO::Socket::INET -e '
  alarm 300;
  my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[1], Listen => 5, ReuseAddr => 1) or die "listen: $!";
  open(my $log, ">>", $ARGV[0]) or die "log: $!"; $log->autoflush(1);
  open(my $ready, ">", "$ARGV[0].ready") or die; close $ready;
  while (my $c = $s->accept) {
    my $req = <$c> // ""; my $auth = "";
    while (my $l = <$c>) { last if $l =~ /^\r?\n$/; $auth = $1 if $l =~ /^authorization:\s*(.*?)\r?$/i; }
    $req =~ s/\r?\n$//; print $log "$req|$auth\n";
    print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"; close $c;
  }' "$PINGS" "$PORT" &
LISTENER=$!
trap 'kill $LISTENER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -e "$PINGS.ready" ] && break; sleep 0.1; done
[ -e "$PINGS.ready" ] || fail "the ping listener did not start"

# level 0: journal-style progress lines
zrb_snapshot "$MCONF" mon 0 >/dev/null
run "$ZRB" backup --config "$MCONF" --task mon --level 0 --progress-interval 1s --bwlimit 4MiB/s 2> /tmp/l0.err || { cat /tmp/l0.err >&2; fail "backup level 0 failed"; }
cat /tmp/l0.err
grep -Eq 'backup mon level 0: about [0-9.]+ MiB to send \(estimate: zfs send -nP\)' /tmp/l0.err || fail "no start line with the zfs send -nP estimate"
nprog=$(grep -Ec 'backup mon level 0: [0-9.]+ \S+ of ~[0-9.]+ \S+ \([0-9]+%\), .*/s, ETA [^,]+, parts [0-9]+/~[0-9]+' /tmp/l0.err || true)
[ "$nprog" -ge 2 ] || fail "expected >= 2 progress lines with ETA (12 MiB at 4 MiB/s, one a second), got $nprog"

# level 1: --json events
head -c $((3 * 1024 * 1024)) /dev/urandom > "$(mountpoint_of "$MDS")/random-3m"
zrb_snapshot "$MCONF" mon 1 >/dev/null
out=$("$ZRB" backup --config "$MCONF" --task mon --level 1 --json --progress-interval 1s --bwlimit 1MiB/s) || fail "backup level 1 --json failed"
jq -se 'all(.[]; type == "object" and (.event | type) == "string")' <<<"$out" >/dev/null || fail "--json printed something other than event objects: $out"
events=$(jq -sr 'map(.event) | join(",")' <<<"$out")
[[ "$events" =~ ^start,.*progress.*part.*,done$ ]] || fail "events are $events, want start … progress … part … done"
est=$(jq -sr '.[0] | select(.estimate == "zfs send -nP") | .bytesExpected' <<<"$out")
sent=$(jq -sr '.[-1].result.streamBytes' <<<"$out")
[[ "$est" =~ ^[0-9]+$ && "$sent" =~ ^[0-9]+$ ]] || fail "no zfs send -nP estimate ($est) or stream size ($sent) in the events"
diff=$(( est > sent ? est - sent : sent - est )); tol=$(( sent * 15 / 100 > 65536 ? sent * 15 / 100 : 65536 ))
[ "$diff" -le "$tol" ] || fail "estimate $est vs sent $sent: off by $diff > $tol"

# metrics
[ "$(stat -c %a "$PROM")" = 644 ] || fail "$PROM has mode $(stat -c %a "$PROM"), want 644"
for l in 0 1; do
  grep -Eq "^zrb_backup_last_exit_code\{task=\"mon\",pool=\"$POOL\",dataset=\"mon\",level=\"$l\"\} 0$" "$PROM" || fail "no exit code 0 for level $l in $PROM: $(cat "$PROM")"
  grep -Eq "^zrb_backup_last_success_timestamp_seconds\{task=\"mon\",pool=\"$POOL\",dataset=\"mon\",level=\"$l\"\} [0-9.]+$" "$PROM" || fail "no success time for level $l"
done

# pings: start, success; twice (two backups); credentials as a header only
auth="Basic $(printf 'hc:pw-s3cret' | base64)"
want="GET /ping/uuid-vm/start HTTP/1.1|$auth
GET /ping/uuid-vm HTTP/1.1|$auth"
got=$(cat "$PINGS")
[ "$got" = "$want"$'\n'"$want" ] || fail "pings differ: got
$got
want (twice)
$want"
grep -q 'pw-s3cret\|uuid-vm' /tmp/l0.err && fail "the ping URL's secrets were printed"

result "progress: start line (zfs send -nP) + $nprog ETA lines; --json $events (estimate $est vs $sent sent); $PROM 0644 with levels 0,1; pings start+success ×2 with Basic auth"
