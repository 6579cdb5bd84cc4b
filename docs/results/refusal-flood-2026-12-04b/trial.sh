#!/usr/bin/env bash
# The refusal flood beside ordinary traffic, as in ../refusal-flood-2026-12-04/ (run from
# the repository root with a release build): fluxgate with that trial's gw.conf, hey for 40 s,
# flood.py meanwhile, RSS and descriptors every 5 s.
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
FIRST=$D/../refusal-flood-2026-12-04   # the first trial's config and flood client, used as they are
rm -rf /tmp/trial && mkdir -p /tmp/trial
.build/release/fluxgate --config "$FIRST/gw.conf" > /tmp/trial/out 2>&1 & gw=$!
trap 'kill $gw 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:9090/healthz && break; sleep 0.1; done
sample() { echo "$1 rss_kib=$(awk '/VmRSS/{print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l)"; }
sample before > "$D/samples.txt"
hey -z 40s -c 32 http://127.0.0.1:8080/health > "$D/hey.txt" & heypid=$!
( for i in $(seq 9); do sleep 5; sample "t+$((i * 5))s"; done ) >> "$D/samples.txt" & sampler=$!
python3 "$FIRST/flood.py" 4000 > "$D/flood.txt"
wait $heypid; wait $sampler
sleep 5; sample after >> "$D/samples.txt"
curl -s http://127.0.0.1:9090/metrics | grep -E '^fluxgate_requests_refused_total|^fluxgate_access_log_dropped_total' > "$D/metrics.txt"
sleep 2
grep -c "outcome=refused" /tmp/trial/access.log > "$D/refused-lines.txt"
grep "outcome=refused" /tmp/trial/access.log | sed -E 's/^time=[^ ]+ client=[^ ]+ //; s/ bytes=[0-9]+//' | sort | uniq -c > "$D/access-log-refusals.txt"
