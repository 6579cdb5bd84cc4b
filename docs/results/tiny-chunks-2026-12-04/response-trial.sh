#!/usr/bin/env bash
# The response side: an upstream answering with 200 000 one-byte chunks
# (hostile-upstream-2026-12-04/upstream.py, /tinychunks), 20 clients at once with
# HTTP/1.1 (the chunks pass through) and then with HTTP/1.0 (the gateway de-chunks);
# the gateway's RSS and CPU ticks after each batch. Ports 18802/20802/19802.
# usage: bash docs/results/tiny-chunks-2026-12-04/response-trial.sh [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../../.build/release/fluxgate}
w=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$w"' EXIT
cat >"$w/gw.yaml" <<C
listen: "127.0.0.1:18802"
admin_listen: "127.0.0.1:20802"
workers: 1
upstreams: [{ name: up, url: "http://127.0.0.1:19802" }]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
demo: { enabled: false }
C
python3 "$here/../hostile-upstream-2026-12-04/upstream.py" 19802 & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19802/health && break; sleep 0.1; done
"$bin" --config "$w/gw.yaml" >"$w/gw.log" 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18802/ok && break; sleep 0.2; done
state() { echo "    gateway: rss $(awk '/VmRSS/{print $2}' /proc/$gw/status) KiB, cpu $(awk '{print $14+$15}' /proc/$gw/stat) ticks so far"; }
echo "# $(date -u +%FT%TZ) $bin"
state
for version in --http1.1 --http1.0; do
  for _ in $(seq 20); do curl -s "$version" -o "$w/body.$RANDOM" http://127.0.0.1:18802/tinychunks & done
  wait $(jobs -p | grep -v -e "${pids[0]}" -e "$gw") 2>/dev/null || true
  echo "20 × /tinychunks $version: bodies of $(ls -l "$w"/body.* | awk '{print $5}' | sort -u | tr '\n' ' ')bytes"
  rm -f "$w"/body.*
  state
done
