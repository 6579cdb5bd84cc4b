#!/usr/bin/env bash
# How much cheaper a shed is than a proxied request, on one core (a benchmark).
# Two gateways pinned to CPU 1 in front of one demo upstream (CPU 0): one whose global
# token bucket (1/s) sheds nearly every request with 503 rate_limited, one that
# proxies everything. wrk (CPU 0) runs GET /health, 64 connections, against each.
# Needs wrk (apt-get install -y wrk). Env: DUR seconds (8), ROUNDS (2).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-8}; ROUNDS=${ROUNDS:-2}
bench_need wrk "apt-get install -y wrk"
bench_setup shed
for mode in shed:18501:"{ enabled: true, rate: 1, burst: 1 }" proxy:18502:"{ enabled: false }"; do
  IFS=: read -r name port bucket <<<"$mode"
  cat >"$W/$name.yaml" <<C
listen: "127.0.0.1:$port"
workers: 1
upstreams: [{ url: "http://127.0.0.1:19501" }]
rate_limit: { global: $bucket, per_client: { enabled: false } }
demo: { enabled: false }
C
done
taskset -c 0 "$BIN" demo-upstream --port 19501 --workers 1 >/dev/null 2>&1 & pids+=($!)
taskset -c 1 "$BIN" --config "$W/shed.yaml" >/dev/null 2>&1 & pids+=($!)
taskset -c 1 "$BIN" --config "$W/proxy.yaml" >/dev/null 2>&1 & pids+=($!)
sleep 1.5
printf "%-6s %5s %10s %9s  %s\n" path round rps p99 non-2xx
for r in $(seq 1 "$ROUNDS"); do for t in shed:18501 proxy:18502; do
  out=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" --latency "http://127.0.0.1:${t#*:}/health")
  printf "%-6s %5s %10s %9s  %s\n" "${t%%:*}" "$r" "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="99%"{print $2}' <<<"$out")" "$(awk '/Non-2xx/{print $5}' <<<"$out")"
done; done
