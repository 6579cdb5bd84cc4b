#!/usr/bin/env bash
# A chunked upload (curl, Transfer-Encoding: chunked, 5 000 and 200 000 bytes) through
# nginx, HAProxy and Fluxgate to an upstream that reads request bodies by their
# Content-Length only (Python's http.server, HTTP/1.0: upstream.py). Printed per proxy:
# what the upstream says it read. Run from the repository root:
#   bash docs/results/chunked-upload-length-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t chunkup.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
python3 "$HERE/upstream.py" 19741 & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19741) 2>/dev/null && break; sleep 0.1; done
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W;
  server { listen 127.0.0.1:18741; client_max_body_size 10m;
    location / { proxy_pass http://127.0.0.1:19741; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/haproxy.cfg" <<C
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:18742
  default_backend b
backend b
  server up 127.0.0.1:19741
C
haproxy -f "$W/haproxy.cfg" > "$W/haproxy.log" 2>&1 & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18743"
admin_listen: "127.0.0.1:20743"
workers: 1
demo: { enabled: false }
upstreams: [ { name: up, url: "http://127.0.0.1:19741" } ]
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 18741 18742 18743; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:20743/readyz" > /dev/null && break; sleep 0.1; done
head -c 5000 /dev/urandom > "$W/small"; head -c 200000 /dev/urandom > "$W/large"
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | $(haproxy -v | head -1 | cut -d' ' -f1-3) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for file in small large; do
  echo "## $(wc -c < "$W/$file") bytes, sha256:$(sha256sum "$W/$file" | cut -c1-12), sent chunked"
  for proxy in "nginx 18741" "haproxy 18742" "fluxgate 18743"; do
    read -r name port <<<"$proxy"
    printf "%-9s %s\n" "$name" "$(curl -s -m 10 -H 'Transfer-Encoding: chunked' --data-binary @"$W/$file" "http://127.0.0.1:$port/up" || echo "curl exit $?")"
  done
done
