#!/usr/bin/env bash
# The same two files reloaded N times back to back (no pause) under heaptrack, with
# 20 000 requests of light traffic; heaptrack.txt compares N = 200 and N = 2000.
#   bash docs/results/reload-storm-2026-12-05/hstorm.sh 2000   (needs heaptrack)
set -u
N=$1
HERE=$(cd "$(dirname "$0")" && pwd); B=${FLUXGATE_BIN:-$HERE/../../../.build/release/fluxgate}
W=$(mktemp -d); cd "$W"; cp "$HERE/a.yaml" "$HERE/b.yaml" .; sed -i "s#/tmp/rl/access.log#$W/access.log#" b.yaml
$B demo-upstream --port 18101 --instance x > d1.log 2>&1 & d1=$!
$B demo-upstream --port 18102 --instance y > d2.log 2>&1 & d2=$!
sleep 0.5
cp a.yaml gw.yaml
heaptrack -o "$W/heap-$N" $B --config gw.yaml > gw.out 2> gw.err & hp=$!
for _ in $(seq 100); do curl -sf -o /dev/null localhost:19190/healthz && break; sleep 0.1; done
hey -n 20000 -c 4 -q 200 http://127.0.0.1:18180/health > hey.txt 2>&1 & heyp=$!
for i in $(seq $N); do
  if [ $((i % 2)) = 0 ]; then cp a.yaml gw.yaml; else cp b.yaml gw.yaml; fi
  curl -s -X POST localhost:19190/reload > /dev/null
done
wait $heyp
sleep 3
curl -s -X POST localhost:19190/reload > /dev/null
pkill -TERM -f "^$B --config gw.yaml"; wait $hp
kill $d1 $d2
heaptrack_print "$W/heap-$N".zst | grep -E "^(total runtime|calls to allocation|peak heap|peak RSS|total memory leaked)"
