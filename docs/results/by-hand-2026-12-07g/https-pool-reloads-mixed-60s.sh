#!/usr/bin/env bash
# 60 s of mixed keep-alive and new-connection traffic through A (one https:// upstream B), SIGHUP to A every second;
# A's RSS and open descriptors every 5 s, and again once the load stops and the pool idles out.
set -u
BIN=/work/main/.build/release/fluxgate; cd /tmp/rl; rm -f a.log b.log
$BIN demo-upstream --port 19581 --workers 1 > up.log 2>&1 & U=$!
$BIN --config b.yaml > b.log 2>&1 & Bp=$!
for _ in $(seq 50); do curl -sk -o /dev/null https://127.0.0.1:18591/health && break; sleep 0.1; done
$BIN --config a.yaml > a.log 2>&1 & Ap=$!
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:20590/readyz)" = 200 ] && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD)); A (workers 1) -> https://localhost:18591 (B, Fluxgate terminating TLS) -> demo upstream"
echo "# load for 60 s: wrk -t1 -c32 keep-alive GET /api/status, hey -disable-keepalive -c 8 (a new client connection per request) POST /api/echo; SIGHUP to A every second"
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }; fds() { ls /proc/$1/fd | wc -l; }
echo "before load: A rss_kib=$(rss $Ap) fds=$(fds $Ap)"
(for i in $(seq 60); do sleep 1; kill -HUP $Ap; done) & R=$!
wrk -t1 -c32 -d60s http://127.0.0.1:18590/api/status > wrk.txt 2>&1 & W=$!
hey -disable-keepalive -c 8 -z 60s -m POST -T application/json -d '{"a":1}' http://127.0.0.1:18590/api/echo > hey.txt 2>&1 & H=$!
for t in 5 10 15 20 25 30 35 40 45 50 55 60; do sleep 5; echo "t=${t}s A rss_kib=$(rss $Ap) fds=$(fds $Ap)"; done
wait $W $H $R
for t in 1 2 3 4 5 6 7 8; do sleep 1; done
echo "8 s after the load: A rss_kib=$(rss $Ap) fds=$(fds $Ap)"
echo "== wrk"; grep -E "requests in|Non-2xx|Socket errors" wrk.txt
echo "== hey"; grep -E "Requests/sec|\[[0-9]+\]" hey.txt
echo "== A"; echo "reloads: $(grep -c 'configuration reloaded' a.log); error or warning lines: $(grep -ci 'error\|warning' a.log)"
curl -s http://127.0.0.1:20590/metrics | grep -E "^fluxgate_request_outcomes_total|^fluxgate_upstream_failures_total" | grep -v " 0$"
kill -TERM $Ap; wait $Ap; echo "A drain exit $?"; kill $Bp $U; wait 2>/dev/null
