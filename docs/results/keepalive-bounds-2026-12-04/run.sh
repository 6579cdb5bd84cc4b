#!/usr/bin/env bash
# limits.max_requests_per_connection beside nginx's keepalive_requests, by hand:
# nginx 1.22 and Fluxgate with the bound at 2 in front of one demo upstream, three
# pipelined GET /health in one write to each (pipe3.py); then both with the bound at
# 100 under `wrk -t1 -c8 -d5s` (wrk reconnects after each close; its error line would
# show a reset or a lost answer). BIN: the fluxgate binary (.build/release/fluxgate).
set -euo pipefail
BIN=${BIN:-.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null; rm -rf "$W"' EXIT
conf() {  # N
  cat >"$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests $1;
  upstream app { server 127.0.0.1:19911; keepalive 16; }
  server { listen 127.0.0.1:18911; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
  cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:18912"
admin_listen: "127.0.0.1:18913"
workers: 1
upstreams: [{ url: "http://127.0.0.1:19911" }]
demo: { enabled: false }
limits: { max_requests_per_connection: $1 }
C
}
"$BIN" demo-upstream --port 19911 --instance a --workers 1 >"$W/demo.log" 2>&1 & pids+=($!)
for n in 2 100; do
  conf "$n"
  nginx -c "$W/nginx.conf" & pids+=($!)
  "$BIN" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & gw=$!; pids+=($gw)
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18912/health && curl -sf -o /dev/null http://127.0.0.1:18911/health && break; sleep 0.1; done
  echo "## bound $n ($(nginx -v 2>&1 | sed 's/.*: //'): keepalive_requests $n; Fluxgate: limits.max_requests_per_connection: $n)"
  for port in 18911 18912; do
    name=$([ $port = 18911 ] && echo nginx || echo Fluxgate)
    if [ "$n" = 2 ]; then
      echo "=== $name: three pipelined GET /health in one write"; python3 "$HERE/pipe3.py" $port 3
    else
      echo "=== $name: wrk -t1 -c8 -d5s /health"; wrk -t1 -c8 -d5s "http://127.0.0.1:$port/health" | grep -E "requests in|Socket errors|Non-2xx|Requests/sec"
    fi
  done
  [ "$n" = 100 ] && curl -s http://127.0.0.1:18913/metrics | grep '^fluxgate_connections_recycled_total'
  kill "$gw" "$(cat "$W/nginx.pid")"; wait "$gw" 2>/dev/null || true; sleep 0.5
done
