#!/usr/bin/env bash
# Absolute-form targets through nginx, HAProxy and Fluxgate side by side (what before.txt and after.txt hold):
# an upstream that answers with the head it received, the five requests of before.txt, each on a new connection.
# Needs nginx-light and haproxy (apt-get). Run from the repository root after scripts/build-release.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); W=$(mktemp -d); BIN=${FLUXGATE_BIN:-.build/release/fluxgate}
python3 "$HERE/echo_head_upstream.py" & up=$!
cat > "$W/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/error.log;
events { worker_connections 64; }
http { access_log off; server { listen 127.0.0.1:18391; location / { proxy_pass http://127.0.0.1:18399; proxy_http_version 1.1; } } }
CONF
printf 'defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nfrontend f\n  bind 127.0.0.1:18392\n  default_backend b\nbackend b\n  server s1 127.0.0.1:18399\n' > "$W/haproxy.cfg"
printf 'listen: "127.0.0.1:18381"\nadmin_listen: "127.0.0.1:19391"\nreload: { watch: false }\nhealth_check: { enabled: false }\nupstreams: [ { name: e, url: "http://127.0.0.1:18399" } ]\n' > "$W/gw.yaml"
nginx -c "$W/nginx.conf" & ng=$!
haproxy -f "$W/haproxy.cfg" & hp=$!
"$BIN" --config "$W/gw.yaml" 2> "$W/gw.err" & gw=$!
sleep 1.5
nginx -v 2>&1; haproxy -v | head -1; git log -1 --format='fluxgate %h'
python3 - <<'PY'
import socket
requests = [(b"http://x/health?a=1", b"x"), (b"http://x:80/p", b"x"), (b"http://x/p", b"x:80"), (b"http://y/p", b"x"), (b"http://x", b"x")]
for port in (18391, 18392, 18381):
    print("== port", port)
    for target, host in requests:
        req = b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); s.settimeout(1)
        d = b""
        try:
            while True:
                x = s.recv(65536)
                if not x: break
                d += x
        except Exception: pass
        print(" ", req.split(b"\r\n")[0], b"Host: " + host, "->", d.split(b"\r\n")[0], d.split(b"\r\n\r\n", 1)[-1][:50])
PY
kill $up $ng $hp $gw
