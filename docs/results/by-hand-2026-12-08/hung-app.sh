#!/usr/bin/env bash
# An app whose health check passes while its requests hang (by hand, release build):
# upstream a is hung_app.py (GET /health 200 at once, every other request never
# answered), b a demo upstream (5 ms), both max_concurrency 50 (C = 100, S = 67), one
# gateway with its defaults (probes see a healthy; passive ejection after 5 failures in
# a row; timeouts.upstream_header 30 s, then a retry on b for these GETs); wrk -c200 on
# GET /api/status for 45 s. Every 1.5 s: requests by status so far, a's state, in
# flight, queued. FLUXGATE_BIN: another build.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}
W=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
python3 docs/results/by-hand-2026-12-08/hung_app.py 19621 & pids+=($!)
"$BIN" demo-upstream --port 19622 --instance b --workers 1 --latency-ms 5 >"$W/b.log" 2>&1 & pids+=($!)
cat >"$W/gw.yaml" <<YAML
listen: "127.0.0.1:18621"
admin_listen: "127.0.0.1:19720"
workers: 1
upstreams:
  - { name: a, url: "http://127.0.0.1:19621", max_concurrency: 50 }
  - { name: b, url: "http://127.0.0.1:19622", max_concurrency: 50 }
YAML
sleep 0.5
"$BIN" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18621/health -H 'Host: x' && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN"
wrk -t1 -c200 -d45s --timeout 40s http://127.0.0.1:18621/api/status >"$W/wrk.txt" 2>&1 & wrk=$!
T0=$(date +%s.%N)
for i in $(seq 30); do
  curl -s http://127.0.0.1:19720/metrics | awk -v t="$(echo "$(date +%s.%N) - $T0" | bc)" '
    /^fluxgate_requests_total/ { split($0, p, "status=\""); s = substr(p[2], 1, 3); by[s] += $2 }
    /^fluxgate_upstream_ready\{upstream="a"\}/ { rot = $2 } /^fluxgate_upstream_inflight_requests\{upstream="a"\}/ { ina = $2 }
    /^fluxgate_inflight_requests / { inf = $2 } /^fluxgate_queued_requests / { q = $2 } /^fluxgate_admission_slots / { S = $2 }
    END { printf "t=%5.1fs a: ready=%s requests_on_a=%s  S=%s in_flight=%s queued=%s  2xx=%d 5xx=%d\n", t, rot, ina, S, inf, q, by["2xx"], by["5xx"] }'
  sleep 1.5
done
wait $wrk || true
cat "$W/wrk.txt"
echo "--- counters"
curl -s http://127.0.0.1:19720/metrics | grep -E '^fluxgate_(shed_total|timeouts_total|retries_total|upstream_ejections_total|admission_slots_given_back_total)' | grep -v ' 0$'
echo "--- gateway log"
grep -v "demo upstream listening" "$W/gw.log" | cut -c1-200
