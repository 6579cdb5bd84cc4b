#!/usr/bin/env bash
# ad hoc: perf cpu-clock profile of Fluxgate (user space) under wrk -c64 GET /health
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-8}
bench_ports_free 19781 18782 20782
bench_setup profile-self
bench_nginx_health_upstream 19781 0
bench_fluxgate_config 18782 19781 "${GLOBAL:-}" >"$W/fluxgate.yaml"
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fp=$!
bench_wait upstream 19781; bench_wait fluxgate 18782
taskset -c 0 wrk -t1 -c64 -d2s http://127.0.0.1:18782/health >/dev/null
taskset -c 0 wrk -t1 -c64 -d$((DUR+2))s http://127.0.0.1:18782/health > "$W/wrk.txt" &
lp=$!
sleep 1
perf record -q -e cpu-clock -F 4999 -g -p "$fp" -o "$W/perf.data" -- sleep "$DUR" 2>/dev/null
wait $lp
grep Requests/sec "$W/wrk.txt"
perf report -i "$W/perf.data" --no-children --sort sym --percent-limit 0.4 --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -${TOP:-70}
