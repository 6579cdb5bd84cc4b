#!/usr/bin/env bash
# host_header with the release build beyond the unit tests: the health probe carries the
# fixed Host (an upstream written as an IP address whose name-routed site answers the
# probe path 200 and its default site 404), and 20 s of wrk through the rewrite while
# RSS and open descriptors are sampled.
#   bash docs/results/host-header-2026-12-05/probe-and-load.sh    # needs nginx-light, wrk, curl
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}
W=$(mktemp -d -t host-probe.XXXX); mkdir -p "$W/logs"
trap 'kill "$(cat "$W/nginx.pid" 2>/dev/null)" 2>/dev/null || true; kill "$gw" 2>/dev/null || true' EXIT
gw=
cat >"$W/nginx.conf" <<NGINX
worker_processes 1; daemon on; pid $W/nginx.pid; error_log $W/logs/error.log;
events {}
http { access_log off;
  server { listen 127.0.0.1:19721 default_server; location / { return 404 "unknown site\n"; } }
  server { listen 127.0.0.1:19721; server_name api.internal; keepalive_requests 100000; location / { return 200 "api\n"; } } }
NGINX
nginx -p "$W" -c "$W/nginx.conf"
start() {  # HOST_HEADER
  cat >"$W/gw.yaml" <<YAML
listen: "127.0.0.1:19731"
admin_listen: "127.0.0.1:19732"
workers: 1
rate_limit: { global: { enabled: false } }
health_check: { path: /ready, expected_statuses: [200], interval: 1s, timeout: 500ms }
upstreams:
  - { name: app, url: "http://127.0.0.1:19721", host_header: $1 }
YAML
  "$BIN" --config "$W/gw.yaml" >"$W/gw-$1.log" 2>&1 & gw=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:19732/healthz" && break; sleep 0.1; done
}
echo "# $(date -u +%FT%TZ) release build $(git rev-parse --short HEAD), $(nginx -v 2>&1)"
for setting in client api.internal; do
  start "$setting"
  state=$(curl -s http://127.0.0.1:19732/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["upstreams"][0]["state"])')
  echo "host_header: $setting -> upstream $state after the first probe; GET /x answered $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19731/x); log: $(grep -o 'reason=[^[]*' "$W/gw-$setting.log" | head -1)"
  [ "$setting" = api.internal ] || { kill "$gw"; wait "$gw" 2>/dev/null || true; }
done
echo "wrk -t1 -c64 -d20s through host_header: api.internal, sampling the gateway every 2 s:"
wrk -t1 -c64 -d20s http://127.0.0.1:19731/x >"$W/wrk.txt" 2>&1 & wk=$!
for i in $(seq 10); do
  sleep 2
  printf '  +%2ds rss %s KiB, descriptors %s\n' $((i * 2)) "$(awk '/VmRSS/ {print $2}' /proc/$gw/status)" "$(ls /proc/$gw/fd | wc -l)"
done
wait "$wk"; grep -E "requests in|Non-2xx|Socket errors|Requests/sec" "$W/wrk.txt" | sed 's/^/  /'
sleep 1; echo "after: descriptors $(ls /proc/$gw/fd | wc -l)"
