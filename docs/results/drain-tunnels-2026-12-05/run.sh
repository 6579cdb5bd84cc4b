#!/usr/bin/env bash
# One WebSocket open through nginx (SIGQUIT, its graceful shutdown, with
# worker_shutdown_timeout 3s) and through Fluxgate (SIGTERM, drain_timeout 3s), the client pinging every 200 ms; the
# stop signal goes 1 s after the connection opens. Printed: how long each connection
# lasted, and when the proxy's process ended. Needs nginx, python3 with websockets
# (pip install websockets). Run from the repository root:
#   bash docs/results/drain-tunnels-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t draintun.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
python3 "$HERE/ws.py" server 19761 2> "$W/server.err" & pids+=($!)
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err notice; worker_shutdown_timeout 3s;
events { worker_connections 1024; }
http { access_log off;
  server { listen 127.0.0.1:18761; location / { proxy_pass http://127.0.0.1:19761; proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade"; } } }
C
nginx -c "$W/nginx.conf" & nginx_pid=$!; pids+=($nginx_pid)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18762"
admin_listen: "127.0.0.1:20762"
workers: 1
demo: { enabled: false }
upstreams: [ "http://127.0.0.1:19761" ]
health_check: { enabled: false }
drain_timeout: 3s
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & fluxgate_pid=$!; pids+=($fluxgate_pid)
for port in 19761 18761 18762; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for proxy in "nginx 18761 $nginx_pid QUIT" "fluxgate 18762 $fluxgate_pid TERM"; do
  read -r name port pid signal <<<"$proxy"
  rm -f "$W/connected"
  python3 "$HERE/ws.py" client "$port" "$W/connected" > "$W/$name.client" 2>&1 & client=$!
  for _ in $(seq 100); do [ -e "$W/connected" ] && break; sleep 0.05; done
  sleep 1
  start=$(date +%s.%N); kill -"$signal" "$pid"
  wait "$pid" 2>/dev/null || true; ended=$(date +%s.%N)
  wait "$client" || true
  printf "%-9s websocket closed %s | process ended %.1f s after SIG%s\n" "$name" "$(cat "$W/$name.client")" "$(echo "$ended - $start" | bc)" "$signal"
done
echo "## Fluxgate's drain lines"; grep -o "notice fluxgate: .*drain.*\|warning fluxgate: .*drain.*" "$W/fluxgate.log" || true
