#!/usr/bin/env bash
# Runs age_and_parking.py against the release build (BIN), one demo upstream.
set -u
BIN=$(realpath "${BIN:-.build/release/fluxgate}")
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$W"' EXIT
"$BIN" demo-upstream --port 19931 --instance a --workers 1 >"$W/demo.log" 2>&1 & pids+=($!)
run() {  # NAME EXTRA-YAML
  cat >"$W/$1.yaml" <<C
listen: "127.0.0.1:18931"
admin_listen: "127.0.0.1:18932"
workers: 1
demo: { enabled: false }
upstreams: [{ url: "http://127.0.0.1:19931" }]
$2
C
  "$BIN" --config "$W/$1.yaml" >"$W/$1.log" 2>&1 & local gw=$!
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18932/readyz && break; sleep 0.1; done
  echo "== $1 ($2)"
  python3 "$HERE/age_and_parking.py" "$1" 18931 18932
  curl -s http://127.0.0.1:18932/metrics | grep '^fluxgate_connections_recycled_total'
  kill "$gw"; wait "$gw" 2>/dev/null
}
run age "timeouts: { max_connection_age: 2s }"
run parking "limits: { max_requests_per_connection: 3 }
timeouts: { park_after: 1s }"
