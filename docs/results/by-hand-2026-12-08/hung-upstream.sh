#!/usr/bin/env bash
# A hung upstream under load (by hand, release build): two demo upstreams (5 ms) behind
# one gateway (one event loop, every default but those written below), wrk -c${CONNS:-32} on
# GET /api/status for 24 s (CONNS: 32); at +2 s upstream a is stopped (SIGSTOP: it accepts nothing
# new, answers nothing, keeps its sockets open — a hung process, not a dead one), at
# +14 s continued. Every 0.5 s: requests by status so far, a's state, in flight, queued.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}
W=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
"$BIN" demo-upstream --port 19601 --instance a --workers 1 --latency-ms 5 >"$W/a.log" 2>&1 & a=$!; pids+=($a)
"$BIN" demo-upstream --port 19602 --instance b --workers 1 --latency-ms 5 >"$W/b.log" 2>&1 & pids+=($!)
cat >"$W/gw.yaml" <<YAML
listen: "127.0.0.1:18601"
admin_listen: "127.0.0.1:19690"
workers: 1
upstreams:
  - { name: a, url: "http://127.0.0.1:19601", max_concurrency: 50 }
  - { name: b, url: "http://127.0.0.1:19602", max_concurrency: 50 }
${EXTRA:-}
YAML
sleep 0.5
"$BIN" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18601/health && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(git rev-parse --short HEAD)); extra config: ${EXTRA:-none}"
wrk -t1 -c${CONNS:-32} -d24s --timeout 10s http://127.0.0.1:18601/api/status >"$W/wrk.txt" 2>&1 & wrk=$!
T0=$(date +%s.%N)
sample() {
  curl -s http://127.0.0.1:19690/metrics | awk -v t="$(echo "$(date +%s.%N) - $T0" | bc)" '
    /^fluxgate_requests_total/ { split($0, p, "status=\""); s = substr(p[2], 1, 3); by[s] += $2 }
    /^fluxgate_upstream_up\{upstream="a"\}/ { up = $2 } /^fluxgate_upstream_ready\{upstream="a"\}/ { rot = $2 }
    /^fluxgate_inflight_requests / { inf = $2 } /^fluxgate_queued_requests / { q = $2 } /^fluxgate_admission_slots / { S = $2 }
    END { printf "t=%5.1fs a: probe_up=%s ready=%s  S=%s in_flight=%s queued=%s  2xx=%d 5xx=%d 4xx=%d\n", t, up, rot, S, inf, q, by["2xx"], by["5xx"], by["4xx"] }'
}
for i in $(seq 48); do
  [[ $i == 4 ]] && { kill -STOP $a; echo "--- a stopped (SIGSTOP)"; }
  [[ $i == 28 ]] && { kill -CONT $a; echo "--- a continued (SIGCONT)"; }
  sample; sleep 0.5
done
wait $wrk
cat "$W/wrk.txt"
echo "--- sheds and timeouts"
curl -s http://127.0.0.1:19690/metrics | grep -E '^fluxgate_(shed_total|timeouts_total|retries_total|upstream_ejections_total|upstream_failures_total)' | grep -v ' 0$'
echo "--- gateway log"
grep -v "demo upstream listening" "$W/gw.log" | cut -c1-220
