#!/usr/bin/env bash
# A replica added behind one virtual address while traffic flows: HAProxy 2.6 in TCP mode stands for a
# Kubernetes ClusterIP Service (per-connection round-robin over the ready replicas, health-checked every
# 200 ms); replica A runs from the start, replica B is started 10 s into 40 s of wrk -c16 through Fluxgate
# (workers 1, one upstream: the virtual address). Requests each replica served, read from its /api/metrics
# every 10 s — with the pool's defaults (max_requests_per_connection 1000, max_connection_age 1h) and with
# both bounds off (the behaviour before 2026-12-07: a pooled connection is reused for as long as it is busy).
set -u
BIN=${BIN:-/work/main/.build/release/fluxgate}; D=/tmp/so; mkdir -p $D; cd $D
cat > haproxy.cfg <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend service
  bind 127.0.0.1:19590
  default_backend pods
backend pods
  balance roundrobin
  server a 127.0.0.1:19591 check inter 200ms fall 1 rise 1
  server b 127.0.0.1:19592 check inter 200ms fall 1 rise 1
CFG
total() { curl -s http://127.0.0.1:$1/api/metrics | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])' 2>/dev/null || echo "-"; }
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD)); $(haproxy -v | head -1)"
for mode in defaults unbounded; do
  pool=""; [ $mode = unbounded ] && pool="pool: { max_requests_per_connection: 0, max_connection_age: 0s }"
  printf 'listen: "127.0.0.1:18592"\nadmin_listen: "127.0.0.1:19593"\nworkers: 1\nupstreams: [{url: "http://127.0.0.1:19590", max_concurrency: 400}]\nhealth_check: { path: /health }\n%s\n' "$pool" > gw.yaml
  $BIN demo-upstream --port 19591 --instance a --workers 1 > a.log 2>&1 & A=$!
  haproxy -f haproxy.cfg > hap.log 2>&1 & H=$!
  $BIN --config gw.yaml > gw.log 2>&1 & G=$!
  for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19593/readyz)" = 200 ] && break; sleep 0.1; done
  echo "== pool: $mode ($(grep -o 'pool:.*' gw.yaml || echo 'pool: defaults'))"
  a0=$(total 19591)
  wrk -t1 -c16 -d40s http://127.0.0.1:18592/api/status > wrk.txt 2>&1 & W=$!
  sleep 10; $BIN demo-upstream --port 19592 --instance b --workers 1 > b.log 2>&1 & B=$!
  echo "t=10s replica B started; A had served $(( $(total 19591) - a0 ))"
  for t in 20 30 40; do sleep 10; echo "t=${t}s A total=$(( $(total 19591) - a0 )) B total=$(total 19592)"; done
  wait $W; grep -E "requests in|Non-2xx|Socket errors" wrk.txt
  kill $G $H $A $B; wait 2>/dev/null
done
