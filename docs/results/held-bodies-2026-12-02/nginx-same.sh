#!/usr/bin/env bash
# The same uploads through nginx (one worker, keepalive 16 to the same stale upstream),
# for comparison: nginx resends idempotent requests whose cached connection failed.
set -uo pipefail
W=$(mktemp -d); mkdir -p "$W/body" "$W/proxy"; chmod 755 "$W"; chown nobody "$W/body" "$W/proxy" 2>/dev/null || true  # nginx workers run as nobody
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/body; proxy_temp_path $W/proxy;
  upstream u { server 127.0.0.1:19881; keepalive 16; }
  server { listen 127.0.0.1:18882; client_max_body_size 10m;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
python3 "$(dirname "$0")/stale_upstream.py" 19881 & up=$!
python3 -c 'import socket, time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", 19881)).close(); break
    except OSError: time.sleep(0.05)'
nginx -c "$W/nginx.conf" & ng=$!
sleep 1
head -c 4000 /dev/urandom > "$W/small"; head -c 1048576 /dev/urandom > "$W/large"
for method in PUT POST; do
  for size in small large; do
    want=$(sha256sum "$W/$size" | cut -d' ' -f1); ok=0; other=""
    for i in $(seq 20); do
      out=$(curl -s -X "$method" --data-binary @"$W/$size" -w ' %{http_code}' http://127.0.0.1:18882/upload)
      if [ "$out" = "$want 200" ]; then ok=$((ok + 1)); else other="$other ${out##* }"; fi
    done
    echo "nginx $method $size: $ok/20 answered 200 with the body's sha256; others:${other:- none}"
  done
done
kill $ng $up; wait 2>/dev/null; rm -rf "$W"
