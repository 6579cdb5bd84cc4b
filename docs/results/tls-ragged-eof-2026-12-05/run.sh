#!/usr/bin/env bash
# A healthy https:// upstream that ends close-delimited bodies with a TCP close and no
# TLS close_notify (Python's http.server behind ssl), behind nginx, HAProxy and Fluxgate.
# Eight GETs of a 100 000-byte body through each; printed: status and bytes per request,
# then what each proxy logged or counted against the upstream. Run from the repository root:
#   bash docs/results/tls-ragged-eof-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t ragged.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$W/up.key" -out "$W/up.pem" 2>/dev/null
python3 "$HERE/upstream.py" 19711 "$W/up.pem" "$W/up.key" & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19711) 2>/dev/null && break; sleep 0.1; done
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err info;
events { worker_connections 1024; }
http { access_log off;
  upstream u { server 127.0.0.1:19711 max_fails=1; }
  server { listen 127.0.0.1:18711;
    location / { proxy_pass https://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/haproxy.cfg" <<C
global
  log stdout format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:18712
  default_backend b
backend b
  server up 127.0.0.1:19711 ssl verify none check-ssl check
C
haproxy -f "$W/haproxy.cfg" > "$W/haproxy.log" 2>&1 & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18713"
admin_listen: "127.0.0.1:20713"
workers: 1
demo: { enabled: false }
upstreams: [ { name: up, url: "https://127.0.0.1:19711" } ]
upstream_tls: { ca_file: "$W/up.pem" }
health_check: { interval: 500ms, timeout: 400ms }
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 18711 18712 18713; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:20713/readyz" > /dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | $(haproxy -v | head -1 | cut -d' ' -f1-3) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for proxy in "nginx 18711" "haproxy 18712" "fluxgate 18713"; do
  read -r name port <<<"$proxy"
  printf "%-9s" "$name"
  for _ in $(seq 8); do curl -s -o /dev/null -w " %{http_code}/%{size_download}" "http://127.0.0.1:$port/x" || printf " curl-exit-%s" $?; done
  echo
done
sleep 0.5
echo "## nginx error log (notice lines left out)"; grep -v "\[notice\]" "$W/nginx.err" || true
echo "## HAProxy log (termination state ---- is a normal end)"; grep "GET /x" "$W/haproxy.log" || true
echo "## Fluxgate: failures counted against the upstream, and its log"
curl -s "http://127.0.0.1:20713/metrics" | grep '^fluxgate_upstream_failures_total' | grep -v ' 0$' || echo "(none)"
grep -v "gateway listening\|health checks passed\|loaded configuration" "$W/fluxgate.log" || true
