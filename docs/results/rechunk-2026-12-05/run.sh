#!/usr/bin/env bash
# A plain-HTTP upstream that ends its bodies by closing (Python's http.server, HTTP/1.0,
# no Content-Length) behind nginx, HAProxy and Fluxgate. One curl per proxy asks for
# five URLs on one keep-alive connection; printed per request: status, bytes, and how
# many new connections curl had to open for it (0 = the client connection was kept),
# then the framing of the first answer. Run from the repository root:
#   bash docs/results/rechunk-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t rechunk.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
python3 "$HERE/upstream.py" 19721 & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19721) 2>/dev/null && break; sleep 0.1; done
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 1024; }
http { access_log off;
  upstream u { server 127.0.0.1:19721; keepalive 8; }
  server { listen 127.0.0.1:18721;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/haproxy.cfg" <<C
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:18722
  default_backend b
backend b
  server up 127.0.0.1:19721 check
C
haproxy -f "$W/haproxy.cfg" > "$W/haproxy.log" 2>&1 & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18723"
admin_listen: "127.0.0.1:20723"
workers: 1
demo: { enabled: false }
upstreams: [ { name: up, url: "http://127.0.0.1:19721" } ]
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 18721 18722 18723; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:20723/readyz" > /dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | $(haproxy -v | head -1 | cut -d' ' -f1-3) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
echo "# per request: status/bytes/new connections"
for proxy in "nginx 18721" "haproxy 18722" "fluxgate 18723"; do
  read -r name port <<<"$proxy"
  printf "%-9s" "$name"
  curl -s -w " %{http_code}/%{size_download}/%{num_connects}" $(for i in 1 2 3 4 5; do echo "-o /dev/null http://127.0.0.1:$port/x$i"; done)
  echo
done
echo "# the first answer's framing fields"
for proxy in "nginx 18721" "haproxy 18722" "fluxgate 18723"; do
  read -r name port <<<"$proxy"
  printf "%-9s %s\n" "$name" "$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/x" | grep -iE '^(transfer-encoding|content-length|connection):' | tr -d '\r' | tr '\n' ' ')"
done
