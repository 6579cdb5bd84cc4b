#!/usr/bin/env bash
# Chunked request bodies of tiny chunks: an nginx upstream (CPU 0) that reads and drops
# bodies, Fluxgate (`workers: 1`, CPU 1) in front, and tiny.py sending POSTs whose
# bodies come in CHUNK-byte chunks, CONNS at once; the gateway's RSS and CPU ticks after
# each batch. The same payload in one chunk first, for comparison.
# usage: bash docs/results/tiny-chunks-2026-12-04/trial.sh [BINARY]   (ports 18811/19811/20811)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../../.build/release/fluxgate}
w=$(mktemp -d); chmod 755 "$w"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$w"' EXIT
cat >"$w/up.conf" <<C
worker_processes 1; daemon off; pid $w/up.pid; error_log $w/up.err;
events { worker_connections 4096; }
http { access_log off; client_body_buffer_size 2m; client_max_body_size 20m;
  server { listen 127.0.0.1:19811;
    location = /health { return 200 'ok'; }
    location / { return 200 'got it'; } } }
C
cat >"$w/gw.yaml" <<C
listen: "127.0.0.1:18811"
admin_listen: "127.0.0.1:20811"
workers: 1
upstreams: [{ name: up, url: "http://127.0.0.1:19811" }]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
demo: { enabled: false }
C
taskset -c 0 nginx -c "$w/up.conf" -e "$w/up.err" & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19811/health && break; sleep 0.1; done
taskset -c 1 "$bin" --config "$w/gw.yaml" >"$w/gw.log" 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18811/health && break; sleep 0.2; done
state() { echo "    gateway: rss $(awk '/VmRSS/{print $2}' /proc/$gw/status) KiB, cpu $(awk '{print $14+$15}' /proc/$gw/stat) ticks ($(getconf CLK_TCK)/s) so far"; }
echo "# $(date -u +%FT%TZ) $bin ($("$bin" --version))"
state
for args in "65536 65536 50" "1 65536 50" "1 1000000 4" "1 65536 50"; do
  taskset -c 0 python3 "$here/tiny.py" $args
  state
done
