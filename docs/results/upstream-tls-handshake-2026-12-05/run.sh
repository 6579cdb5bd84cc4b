#!/usr/bin/env bash
# An https:// upstream that accepts TCP and never answers its ClientHello, one whose
# certificate is not trusted, and a good one — behind nginx and behind Fluxgate, with a
# 2 s connect timeout and the response-head timeout at 8 s. Each request starts at the
# next upstream in turn; printed: status, seconds, body; then Fluxgate's log, and that of
# a second Fluxgate with health checks on. Run from the repository root:
#   bash docs/results/upstream-tls-handshake-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
W=$(mktemp -d -t tlshs.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
chmod 755 "$W"
mk() {  # NAME: a self-signed P-256 certificate for localhost
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$W/$1.key" -out "$W/$1.pem" 2>/dev/null
  chmod 644 "$W/$1.key" "$W/$1.pem"
}
mk trusted; mk stranger
# 19701: accepts, never reads or answers (a listener that never calls accept: the kernel completes the connects)
python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",19701)); s.listen(64); time.sleep(3600)' & pids+=($!)
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err info;
events { worker_connections 1024; }
http { access_log off;
  server { listen 127.0.0.1:19702 ssl; ssl_certificate $W/stranger.pem; ssl_certificate_key $W/stranger.key;
    location / { return 200 "stranger\n"; } }
  server { listen 127.0.0.1:19703 ssl; ssl_certificate $W/trusted.pem; ssl_certificate_key $W/trusted.key;
    location / { return 200 "good\n"; } }
  upstream u { server 127.0.0.1:19701; server 127.0.0.1:19702; server 127.0.0.1:19703; }
  server { listen 127.0.0.1:18701;
    location / { proxy_pass https://u; proxy_ssl_verify on; proxy_ssl_trusted_certificate $W/trusted.pem;
      proxy_ssl_name localhost; proxy_connect_timeout 2s; proxy_read_timeout 8s; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18702"
admin_listen: "127.0.0.1:20702"
workers: 1
demo: { enabled: false }
upstreams:
  - { name: hung, url: "https://localhost:19701" }
  - { name: stranger, url: "https://localhost:19702" }
  - { name: good, url: "https://localhost:19703" }
upstream_tls: { ca_file: "$W/trusted.pem" }
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
health_check: { enabled: false, passive: { enabled: false } }
timeouts: { connect: 2s, upstream_header: 8s }
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 18701 18702 19703; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for proxy in "nginx 18701" "fluxgate 18702"; do
  read -r name port <<<"$proxy"
  for method in GET POST GET POST GET POST; do
    printf "%-8s %-4s " "$name" "$method"
    if [ "$method" = POST ]; then data=(-d x); else data=(); fi
    curl -s -o "$W/body" -w "%{http_code} %{time_total}s " -X "$method" "${data[@]}" "http://127.0.0.1:$port/r" || true
    tr -d '\n' < "$W/body" | cut -c1-60
  done
done
echo "# nginx's error log (upstream lines):"
grep -E "upstream|SSL" "$W/nginx.err" | sed -E 's/^[0-9/: ]+//; s/, client: .*//' | sort | uniq -c
echo "# Fluxgate's log (nothing but the start: the requests' failures are counted, not logged):"
sed -E 's/^[0-9T:+-]+ //' "$W/fluxgate.log" | grep -v "expires in" | cut -c1-120
echo "# The same Fluxgate with health checks on (their defaults), its log after 4 s:"
sed -i 's/^health_check: .*/health_check: { interval: 1s }/; s/^listen: .*/listen: "127.0.0.1:18703"/; s/^admin_listen: .*/admin_listen: "127.0.0.1:20703"/' "$W/fluxgate.yaml"
"$BIN" --config "$W/fluxgate.yaml" > "$W/checked.log" 2>&1 & pids+=($!)
sleep 4
sed -E 's/^[0-9T:+-]+ //' "$W/checked.log" | grep -v "expires in\|gateway listening"
