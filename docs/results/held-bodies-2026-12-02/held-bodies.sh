#!/usr/bin/env bash
# By hand: PUT and POST uploads (4 KB in memory, 1 MB spooled) through a proxy to an
# upstream whose pooled keep-alive connections close unanswered on their second request
# (stale_upstream.py); each upload's answer must be 200 with the sha256 of what was sent.
# Usage: held-bodies.sh FLUXGATE_BINARY | nginx   (nginx: one worker, keepalive 16 to
# the same upstream, for comparison)
set -uo pipefail
TARGET=$1; W=$(mktemp -d); chmod 755 "$W"
python3 "$(dirname "$0")/stale_upstream.py" 19881 & up=$!
# The upstream listens before the proxy takes requests (a refused first connect is a 502).
python3 -c 'import socket, time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", 19881)).close(); break
    except OSError: time.sleep(0.05)'
if [ "$TARGET" = nginx ]; then
  mkdir -p "$W/body" "$W/proxy"; chown nobody "$W/body" "$W/proxy" 2>/dev/null || true  # nginx workers run as nobody
  cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/body; proxy_temp_path $W/proxy;
  upstream u { server 127.0.0.1:19881; keepalive 16; }
  server { listen 127.0.0.1:18881; client_max_body_size 10m;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
  nginx -c "$W/nginx.conf" & proxy=$!
  sleep 1
else
  printf 'listen: "127.0.0.1:18881"\nadmin_listen: "127.0.0.1:20881"\nworkers: 1\nreload: { watch: false }\nupstreams: [{ url: "http://127.0.0.1:19881" }]\nhealth_check: { enabled: false, passive: { enabled: false } }\nrate_limit: { global: { enabled: false }, per_client: { enabled: false } }\ndemo: { enabled: false }\n' > "$W/gw.yaml"
  "$TARGET" --config "$W/gw.yaml" > "$W/gw.log" 2>&1 & proxy=$!
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:20881/healthz && break; sleep 0.1; done
fi
head -c 4000 /dev/urandom > "$W/small"; head -c 1048576 /dev/urandom > "$W/large"
for method in PUT POST; do
  for size in small large; do
    want=$(sha256sum "$W/$size" | cut -d' ' -f1); ok=0; other=""
    for i in $(seq 20); do
      out=$(curl -s -X "$method" --data-binary @"$W/$size" -w ' %{http_code}' http://127.0.0.1:18881/upload)
      if [ "$out" = "$want 200" ]; then ok=$((ok + 1)); else other="$other ${out##* }"; fi
    done
    echo "$method $size: $ok/20 answered 200 with the body's sha256; others:${other:- none}"
  done
done
if [ "$TARGET" != nginx ]; then
  curl -s http://127.0.0.1:20881/metrics | grep -E '^fluxgate_(retries_total|request_bodies_spooled_total|request_spool_bytes) '
  echo "descriptors: $(ls /proc/$proxy/fd | wc -l)"
fi
kill $proxy $up; wait 2>/dev/null; rm -rf "$W"
