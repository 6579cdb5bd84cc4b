#!/usr/bin/env bash
# ad hoc (not committed): perf profile of fluxgate at C connections
set -euo pipefail
source "$(dirname "$0")/lib.sh"
C=${C:-256}
bench_ports_free 19791 18792 20792
bench_setup prof
bench_nginx_health_upstream 19791 0
bench_fluxgate_config 18792 19791 >"$W/fluxgate.yaml"
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fg=$!
bench_wait upstream 19791; bench_wait fluxgate 18792
taskset -c 0 wrk -t1 -c$C -d3s http://127.0.0.1:18792/health >/dev/null
taskset -c 0 wrk -t1 -c$C -d8s --latency http://127.0.0.1:18792/health > /tmp/prof/wrk-$C.txt &
sleep 1
perf record -g -F 2000 -e cpu-clock -p $fg -o /tmp/prof/perf-$C.data -- sleep 5 2>/dev/null
wait %1 2>/dev/null || true
wait $(jobs -p | tail -1) 2>/dev/null || true
sleep 3
