#!/usr/bin/env bash
# By hand, release build: PUT/POST echo traffic (soak_client.py integrity + bodies, every
# answer checked) through two demo upstreams while upstream 2 is killed (-9) and restarted
# and upstream 1 hangs (SIGSTOP) for 10 s; RSS, descriptors, retries and spool bytes sampled.
set -uo pipefail
cd /work/main; BIN=.build/release/fluxgate; W=$(mktemp -d)
$BIN demo-upstream --port 19711 --instance u1 --workers 1 --latency-ms 5 > $W/u1.log 2>&1 & u1=$!
$BIN demo-upstream --port 19712 --instance u2 --workers 1 --latency-ms 5 > $W/u2.log 2>&1 & u2=$!
sleep 1
cat > $W/gw.yaml <<C
listen: "127.0.0.1:18711"
admin_listen: "127.0.0.1:20711"
workers: 1
reload: { watch: false }
upstreams: [{ url: "http://127.0.0.1:19711", max_concurrency: 100 }, { url: "http://127.0.0.1:19712", max_concurrency: 100 }]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
health_check: { interval: 1s, timeout: 500ms }
timeouts: { upstream_header: 3s }
demo: { enabled: false }
access_log: { enabled: true }
C
$BIN --config $W/gw.yaml > $W/gw.log 2>&1 & gw=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:20711/healthz && break; sleep 0.1; done
metric() { curl -s http://127.0.0.1:20711/metrics | awk -v m="$1" '$1==m {print $2}'; }
sample() { echo "t=$1s rss_kib=$(awk '/VmRSS/{print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l) retries=$(metric fluxgate_retries_total) spooled=$(metric fluxgate_request_bodies_spooled_total) spool_bytes=$(metric fluxgate_request_spool_bytes) $2"; }
sample 0 baseline
python3 bench/soak_client.py integrity 18711 12 60 > $W/integrity.json & ic=$!
python3 bench/soak_client.py bodies 18711 4 60 > $W/bodies.json & bc=$!
for t in 5 10 15 20 25 30 35 40 45 50 55 60; do
  sleep 5; event=""
  case $t in
    15) kill -9 $u2; event="u2 killed (-9)";;
    25) $BIN demo-upstream --port 19712 --instance u2 --workers 1 --latency-ms 5 >> $W/u2.log 2>&1 & u2=$!; event="u2 restarted";;
    35) kill -STOP $u1; event="u1 hung (SIGSTOP)";;
    45) kill -CONT $u1; event="u1 resumed";;
  esac
  sample $t "$event"
done
wait $ic $bc
echo "integrity: $(cat $W/integrity.json)"; echo "bodies: $(cat $W/bodies.json)"
sleep 5; sample after-5s-idle ""
kill $gw $u1 $u2; wait 2>/dev/null; echo "502/504 answers by method:"; grep -oE "method=[A-Z]+ path=[^ ]+ status=50[24]" $W/gw.log | sort | uniq -c; rm -rf $W
