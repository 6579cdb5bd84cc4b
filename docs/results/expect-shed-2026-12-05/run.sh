#!/usr/bin/env bash
# Two 3 MB uploads with `curl -T` (which sends `Expect: 100-continue`) through nginx
# (limit_req 1r/m) and Fluxgate (global bucket: burst 1, 1 per 1000 s), so the second
# upload is refused by the rate limit. Printed per upload: the interim and final status
# lines curl saw and the bytes it sent. Run from the repository root:
#   bash docs/results/expect-shed-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
W=$(mktemp -d -t expect.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
head -c 3000000 /dev/zero > "$W/upload.bin"
# The upstream: reads the body, answers 200 with its length.
python3 - 19741 <<'PY' & pids+=($!)
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0")); self.rfile.read(n)
        body = f"read {n} bytes\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = lambda self: (self.send_response(200), self.send_header("Content-Length", "0"), self.end_headers())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err notice;
events { worker_connections 1024; }
http { access_log off; client_max_body_size 100m;
  limit_req_zone \$binary_remote_addr zone=z:1m rate=1r/m;
  server { listen 127.0.0.1:18741; location / { limit_req zone=z; proxy_pass http://127.0.0.1:19741; } } }
C
nginx -c "$W/nginx.conf" & pids+=($!)
cat > "$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18742"
admin_listen: "127.0.0.1:20742"
workers: 1
demo: { enabled: false }
upstreams: [ "http://127.0.0.1:19741" ]
health_check: { enabled: false }
rate_limit: { global: { rate: 0.001, burst: 1 } }
limits: { max_body_bytes: 100m }
C
"$BIN" --config "$W/fluxgate.yaml" > "$W/fluxgate.log" 2>&1 & pids+=($!)
for port in 19741 18741 18742; do
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
echo "# $(date -u +%FT%TZ) $(nginx -v 2>&1) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN) | $(curl --version | head -1 | cut -d' ' -f1-2)"
for proxy in "nginx 18741" "fluxgate 18742"; do
  read -r name port <<<"$proxy"
  for n in 1 2; do
    out=$(curl -sv -T "$W/upload.bin" -o /dev/null -w "SENT %{size_upload}\n" "http://127.0.0.1:$port/up" 2>&1)
    printf "%-9s upload %s: %s | sent %s bytes\n" "$name" "$n" \
      "$(grep -E '^< HTTP/' <<<"$out" | tr -d '\r' | sed 's/^< //' | paste -sd'>' - | sed 's/>/ then /g')" \
      "$(grep -E '^SENT' <<<"$out" | cut -d' ' -f2)"
  done
done
