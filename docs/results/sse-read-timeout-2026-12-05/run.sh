#!/usr/bin/env bash
# Two healthy upstreams serving server-sent events that pause 2 s between events,
# behind nginx and Fluxgate with a 1 s read timeout and passive failure counting at 3
# (nginx: max_fails=3; Fluxgate: health_check.passive.consecutive_failures: 3). Six
# clients each open a stream (every stream is cut at the read timeout), then each proxy
# is asked whether it now holds the upstreams as failed. Run from the repository root:
#   bash docs/results/sse-read-timeout-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t sse.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
python3 "$HERE/upstream.py" 19751 & pids+=($!)
python3 "$HERE/upstream.py" 19752 & pids+=($!)
for port in 19751 19752; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err info;
events { worker_connections 1024; }
http { access_log off;
  upstream u { server 127.0.0.1:19751 max_fails=3 fail_timeout=30s; server 127.0.0.1:19752 max_fails=3 fail_timeout=30s; }
  server { listen 127.0.0.1:18750;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_read_timeout 1s; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18751"
admin_listen: "127.0.0.1:20751"
workers: 1
demo: { enabled: false }
upstreams: [ { name: a, url: "http://127.0.0.1:19751" }, { name: b, url: "http://127.0.0.1:19752" } ]
timeouts: { upstream_read: 1s }
health_check: { passive: { consecutive_failures: 3 } }
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 18750 18751; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 50); do curl -sf "http://127.0.0.1:20751/readyz" > /dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for proxy in "nginx 18750" "fluxgate 18751"; do
  read -r name port <<<"$proxy"
  echo "## $name: six event streams (status, bytes received, curl's exit: 18 = the stream was cut)"
  clients=()
  for _ in 1 2 3 4 5 6; do
    curl -s -N -m 8 "http://127.0.0.1:$port/events" -o /dev/null -w "%{http_code} %{size_download} exit=%{exitcode}\n" & clients+=($!)
  done
  wait "${clients[@]}" || true
done
echo "## nginx error log: read timeouts, and whether it disabled a server"
grep -o "upstream timed out[^,]*\|upstream server temporarily disabled[^,]*" "$W/nginx.err" | sort | uniq -c || echo "(nothing)"
echo "## Fluxgate: read timeouts, failures held against the upstreams, ejections"
curl -s "http://127.0.0.1:20751/metrics" | grep -E '^fluxgate_(timeouts_total|upstream_failures_total|upstream_ejections_total|upstream_ready)' | grep -vE ' 0(\.0)?$' || true
grep -o 'reason=ejected[^[]*\|panic[^[]*' "$W/fluxgate.log" || echo "(no ejection logged)"
