#!/usr/bin/env bash
# An app whose health path answers 301 (to /health/), behind HAProxy (`option httpchk
# GET /health`, checks every 300 ms, fall 1) and Fluxgate (health_check.path /health,
# every 300 ms, fall 1), each with its default health rule, then Fluxgate with
# `expected_statuses: [200]`. Printed: what a request gets after 1.5 s of checks.
# Run from the repository root: bash docs/results/health-redirect-2026-12-05/run.sh [FLUXGATE_BINARY]
set -euo pipefail
BIN=${1:-$PWD/.build/release/fluxgate}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d -t hredir.XXXX); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
sed 's/19671/19751/' "$HERE/upstream.py" > "$W/upstream.py"
python3 "$W/upstream.py" & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19751) 2>/dev/null && break; sleep 0.1; done
cat > "$W/haproxy.cfg" <<C
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind 127.0.0.1:18751
  default_backend b
backend b
  option httpchk GET /health
  server app 127.0.0.1:19751 check inter 300 rise 1 fall 1
C
haproxy -f "$W/haproxy.cfg" > "$W/haproxy.log" 2>&1 & pids+=($!)
fluxgate() {  # PORT ADMIN [EXTRA]
  cat > "$W/f$1.yaml" <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$2"
workers: 1
demo: { enabled: false }
upstreams: [ "http://127.0.0.1:19751" ]
health_check: { path: /health, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 $3 }
C
  "$BIN" --config "$W/f$1.yaml" > "$W/f$1.log" 2>&1 & pids+=($!)
}
fluxgate 18752 20752 ""
fluxgate 18753 20753 ", expected_statuses: [200]"
sleep 1.5
echo "# $(date -u +%FT%TZ) $(haproxy -v | head -1 | cut -d' ' -f1-3) | fluxgate $(git rev-parse --short HEAD 2>/dev/null) ($BIN)"
for proxy in "haproxy 18751" "fluxgate 18752" "fluxgate-expect-200 18753"; do
  read -r name port <<<"$proxy"
  printf "%-20s %s\n" "$name" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/" | tr -d '\n')"
done
echo "## Fluxgate (expected_statuses: [200]) log"; grep -o "reason=.*upstream down" "$W/f18753.log" | head -2 || true
