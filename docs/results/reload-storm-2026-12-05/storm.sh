#!/usr/bin/env bash
# Reload storm (what storm.txt records): the release gateway with two demo upstreams,
# light traffic (hey, 10 connections at 100 req/s each), and POST /reload every 50 ms
# for DUR seconds, the file switching between a.yaml and b.yaml each time (an upstream
# removed and another added, weights, limits, health, routes, per-client limits and the
# access log changing). Every 200 reloads: RSS, descriptors, threads.
#   DUR=600 bash docs/results/reload-storm-2026-12-05/storm.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd); B=${FLUXGATE_BIN:-$HERE/../../../.build/release/fluxgate}
W=$(mktemp -d); cd "$W"; cp "$HERE/a.yaml" "$HERE/b.yaml" .; sed -i "s#/tmp/rl/access.log#$W/access.log#" b.yaml
$B demo-upstream --port 18101 --instance x > d1.log 2>&1 & d1=$!
$B demo-upstream --port 18102 --instance y > d2.log 2>&1 & d2=$!
sleep 0.5
cp a.yaml gw.yaml
$B --config gw.yaml > gw.out 2> gw.err & gw=$!
for _ in $(seq 50); do curl -sf -o /dev/null localhost:19190/healthz && break; sleep 0.1; done
hey -z ${DUR:-600}s -c 10 -q 100 http://127.0.0.1:18180/health > hey.txt 2>&1 & heyp=$!
i=0; start=$(date +%s)
while kill -0 $heyp 2>/dev/null; do
  i=$((i+1))
  if [ $((i % 2)) = 0 ]; then cp a.yaml gw.yaml; else cp b.yaml gw.yaml; fi
  curl -s -X POST localhost:19190/reload > last.txt
  if [ $((i % 200)) = 0 ]; then echo "$(( $(date +%s)-start ))s reloads=$i rss_kib=$(awk '/VmRSS/{print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l) threads=$(ls /proc/$gw/task | wc -l)"; fi
  sleep 0.05
done
sleep 5
echo "after reloads=$i rss_kib=$(awk '/VmRSS/{print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l) threads=$(ls /proc/$gw/task | wc -l)"
curl -s localhost:19190/metrics | grep -E "^fluxgate_config_reloads"
kill -TERM $gw; wait $gw; echo "gw exit $?"
kill $d1 $d2
