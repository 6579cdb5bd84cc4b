#!/usr/bin/env bash
# One IPv6 host holds a /64 and can take a fresh address from it for each connection.
# Three source addresses on loopback — 2001:db8:1:2::a and ::b (one /64) and
# 2001:db8:1:3::a (another) — against nginx's limit_req keyed by $binary_remote_addr
# and Fluxgate's per-client rate limit and per-client connection cap, each at 1.
# Needs root (adds the three addresses to lo and removes them), curl, python3, nginx.
# Run from the repository root:
#   bash docs/results/ipv6-client-key-2026-12-05/run.sh [FLUXGATE_BINARY] [PREFIX]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
PREFIX=${2:-64}
W=$(mktemp -d -t v6key.XXXX); pids=(); added=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  for a in "${added[@]}"; do ip -6 addr del "$a/128" dev lo 2>/dev/null || true; done
}
trap cleanup EXIT
for a in 2001:db8:1:2::a 2001:db8:1:2::b 2001:db8:1:3::a; do
  ip -6 addr show dev lo | grep -q " $a/128" || { ip -6 addr add "$a/128" dev lo; added+=("$a"); }
done
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 1024; }
http { access_log off;
  limit_req_zone \$binary_remote_addr zone=perclient:1m rate=1r/m;
  server { listen 127.0.0.1:19731; location / { return 200 "ok\n"; } }
  server { listen [::]:18731; location / { limit_req zone=perclient; proxy_pass http://127.0.0.1:19731; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "[::]:18732"
admin_listen: "127.0.0.1:20732"
workers: 1
demo: { enabled: false }
upstreams: [ { name: up, url: "http://127.0.0.1:19731" } ]
rate_limit: { per_client: { enabled: true, rate: 0.0167, burst: 1 } }
limits: { client_ipv6_prefix: $PREFIX }
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
cat > "$W/fluxgate-cap.yaml" <<C
listen: "[::]:18733"
admin_listen: "127.0.0.1:20733"
workers: 1
demo: { enabled: false }
upstreams: [ { name: up, url: "http://127.0.0.1:19731" } ]
limits: { max_connections_per_client: 1, client_ipv6_prefix: $PREFIX }
C
"$BIN" --config "$W/fluxgate-cap.yaml" > "$W/fluxgate-cap.log" 2>&1 & pids+=($!)
for port in 18731 18732 18733; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/::1/$port) 2>/dev/null && break; sleep 0.1; done
done
for admin in 20732 20733; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null && break; sleep 0.1; done
done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN), client_ipv6_prefix: $PREFIX"
echo "## one request from each source address in turn (per-client rate: 1 per minute, burst 1)"
for proxy in "nginx 18731" "fluxgate 18732"; do
  read -r name port <<<"$proxy"
  printf "%-9s" "$name"
  for a in 2001:db8:1:2::a 2001:db8:1:2::b 2001:db8:1:3::a; do
    printf " %s=%s" "$a" "$(curl -s -o /dev/null -w '%{http_code}' --interface "$a" "http://[::1]:$port/")"
  done
  echo
done
echo "## Fluxgate (a second one, no rate limit), max_connections_per_client: 1 — a connection from 2001:db8:1:2::a held open, then one request from each"
python3 - <<P
import socket, time
held = socket.create_connection(("::1", 18733), source_address=("2001:db8:1:2::a", 0))
time.sleep(0.3)
for a in ["2001:db8:1:2::b", "2001:db8:1:3::a"]:
    s = socket.create_connection(("::1", 18733), source_address=(a, 0))
    s.sendall(b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    answer = b""
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        answer += chunk
    line = answer.split(b"\r\n")[0].decode()
    print(a + ": " + line)
held.close()
P
