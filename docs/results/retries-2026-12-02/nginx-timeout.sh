#!/usr/bin/env bash
# By hand: what nginx 1.22 (Debian, default proxy_next_upstream "error timeout") does when
# the first upstream accepts a request and never answers — beside Fluxgate with the same
# two upstreams (retry.on_timeout default). Both with a 1 s response-head timeout.
set -uo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.build/release/fluxgate}; W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
# Upstream 1: accepts, reads, never answers. Upstream 2: the demo.
python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 19741)); s.listen(64)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' &
$BIN demo-upstream --port 19742 --instance ok --workers 1 > "$W/demo.log" 2>&1 &
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 256; }
http { access_log off;
  upstream u { server 127.0.0.1:19741; server 127.0.0.1:19742; }
  server { listen 127.0.0.1:18741;
    location / { proxy_pass http://u; proxy_read_timeout 1s; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
nginx -c "$W/nginx.conf" &
cat > "$W/gw.yaml" <<C
listen: "127.0.0.1:18742"
admin_listen: "127.0.0.1:20742"
workers: 1
reload: { watch: false }
upstreams: [{ url: "http://127.0.0.1:19741" }, { url: "http://127.0.0.1:19742" }]
health_check: { enabled: false }
rate_limit: { global: { enabled: false } }
timeouts: { upstream_header: 1s }
demo: { enabled: false }
C
$BIN --config "$W/gw.yaml" > "$W/gw.log" 2>&1 &
sleep 1.5
for target in nginx:18741 fluxgate:18742; do
  IFS=: read -r name port <<<"$target"
  # FIRST=POST (default): a POST first (both proxies start their rotation at the silent
  # upstream), then GETs; FIRST=GET: the GETs first (fresh processes each run).
  if [ "${FIRST:-POST}" = GET ]; then
    for i in 1 2 3; do
      echo "$name GET  #$i: $(curl -s -o /dev/null -w '%{http_code} %{time_total}s' "http://127.0.0.1:$port/api/status")"
    done
    continue
  fi
  for i in 1 2; do
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}s' -X POST --data-binary '{"a":1}' -H 'content-type: application/json' "http://127.0.0.1:$port/api/echo")
    echo "$name POST #$i: $out"
  done
  for i in 1 2 3; do
    echo "$name GET  #$i: $(curl -s -o /dev/null -w '%{http_code} %{time_total}s' "http://127.0.0.1:$port/api/status")"
  done
done
