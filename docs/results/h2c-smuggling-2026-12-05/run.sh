#!/usr/bin/env bash
# h2c smuggling (an HTTP/1.1 upgrade to HTTP/2 over cleartext that turns the client's
# connection into a tunnel to the upstream) through nginx, HAProxy and Fluxgate, in front
# of h2c_upstream.py (an h2c-capable upstream, python-h2). Each proxy sheds beyond 1 request/s (burst 1);
# two clients ask for the upgrade on one connection and then send 20 more requests in
# HTTP/2 over it: `nghttp -u` (RFC 7540's form: `Connection: Upgrade, HTTP2-Settings`)
# and h2c_client.py (`Connection: Upgrade` only, so a proxy that drops the fields
# Connection names still forwards HTTP2-Settings). Printed per proxy and client: the
# statuses the client got; then the requests each proxy logged or counted, and what
# the upstream answered in each protocol.
#   bash docs/results/h2c-smuggling-2026-12-05/run.sh [FLUXGATE_BINARY]
# Needs nghttp (apt-get install -y nghttp2-client), python-h2 (pip install h2), nginx, haproxy.
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
W=$(mktemp -d -t h2c.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
chmod 755 "$W"
python3 "$(dirname "$0")/h2c_upstream.py" 19720 >"$W/upstream.log" 2>&1 & pids+=($!)
# nginx with the usual WebSocket lines (they pass any Upgrade), one request per second.
cat >"$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 1024; }
http { access_log $W/nginx.access; limit_req_zone \$server_name zone=one:1m rate=1r/s;
  server { listen 127.0.0.1:18721;
    location / { limit_req zone=one; proxy_pass http://127.0.0.1:19720; proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade"; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat >"$W/haproxy.cfg" <<C
global
  log stdout format raw local0
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  log global
  option httplog
frontend f
  bind 127.0.0.1:18722
  http-request track-sc0 int(1) table rate
  http-request deny deny_status 429 if { sc_http_req_rate(0,rate) gt 1 }
  default_backend b
backend rate
  stick-table type integer size 1 expire 10s store http_req_rate(1s)
backend b
  server s 127.0.0.1:19720
C
haproxy -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 & pids+=($!)
cat >"$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18723"
admin_listen: "127.0.0.1:20723"
workers: 1
demo: { enabled: false }
upstreams: [ { url: "http://127.0.0.1:19720" } ]
health_check: { enabled: false }
rate_limit: { global: { enabled: true, rate: 1, burst: 1 }, per_client: { enabled: false } }
access_log: { enabled: true, path: "$W/fluxgate.access" }
C
"$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 19720 18721 18722 18723; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
sleep 1.5  # a full bucket everywhere
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1 | cut -d' ' -f3), $(haproxy -v | head -1 | cut -d' ' -f1-3), fluxgate $BIN"
here=$(dirname "$0")
for proxy in "nginx 18721" "haproxy 18722" "fluxgate 18723"; do
  read -r name port <<<"$proxy"
  sleep 2  # the bucket full again
  # nghttp -u: the RFC 7540 form (Connection: Upgrade, HTTP2-Settings), 21 requests.
  rfc=$(timeout 10 nghttp -u -v $(for i in $(seq 0 20); do echo "http://127.0.0.1:$port/a?n=$i"; done) 2>&1 || true)
  statuses=$(grep -Eo 'recv \(stream_id=[0-9]+\) :status: [0-9]+' <<<"$rfc" | awk '{print $NF}' | sort | uniq -c | awk '{printf "%s x %s ", $1, $2}' || true)
  echo "$name, nghttp -u: $(grep -q 'HTTP Upgrade success' <<<"$rfc" && echo "upgraded; HTTP/2 answers: $statuses" || echo "no upgrade ($(grep -m1 -Eo 'HTTP/1.1 [0-9]{3}[^\r]*' <<<"$rfc" || echo '?'))")"
  sleep 2
  echo "$name, h2c_client.py (Connection: Upgrade only): $(timeout 10 python3 "$here/h2c_client.py" "$port" 20 2>&1 | tail -1)"
done
sleep 1.5  # access logs flushed
echo "# what each proxy saw of those (access-log lines; Fluxgate also its request counter):"
echo "nginx access log lines: $(wc -l < "$W/nginx.access")"
echo "haproxy log lines: $(grep -c 'GET' "$W/haproxy.log" || true)"
echo "fluxgate access log lines: $(wc -l < "$W/fluxgate.access"); fluxgate_requests_total: $(curl -s http://127.0.0.1:20723/metrics | awk '/^fluxgate_requests_total/{s+=$2} END{print s+0}')"
echo "the upstream answered $(grep -c '^HTTP/2' "$W/upstream.log" || true) requests in HTTP/2 and $(grep -c '^HTTP/1.1' "$W/upstream.log" || true) in HTTP/1.1"
