#!/usr/bin/env bash
# The demo upstream's own figures, on loopback (a benchmark, not a test).
#  1. Throughput of one demo instance (one event loop, pinned to CPU 1) under wrk
#     (pinned to CPU 0): GET /health and POST /api/echo with a ~100-item JSON body.
#  2. The collapse curve: an unprotected instance with --capacity 50 --latency-ms 20
#     at 25, 50, 100, 200, 400 concurrent connections — p50/p99 as load passes capacity.
# Needs wrk (apt-get install -y wrk); builds fluxgate in release mode first.
# Env: DUR seconds per run (10), PORT (19101).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-10}; PORT=${PORT:-19101}
bench_need wrk "apt-get install -y wrk"
bench_setup demo-bench

bench_echo_payload

start() {
  taskset -c 1 "$BIN" demo-upstream --port "$PORT" --instance a --workers 1 "$@" >"$W/demo.log" 2>&1 &
  pid=$!; pids=("$pid")
  bench_wait "demo upstream" "$PORT"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pids=(); }
run() { # conns path [wrk args...]
  local c=$1 p=$2; shift 2
  local out; out=$(taskset -c 0 wrk -t1 -c"$c" -d"${DUR}s" --latency "$@" "http://127.0.0.1:$PORT$p" 2>&1)
  printf "%-22s %6s %10s %9s %9s  %s\n" "$p" "$c" "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    "$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr '\n' ' ')"
}

echo "== throughput: one instance, one core (echo body $(wc -c <"$W/echo.json") bytes)"
printf "%-22s %6s %10s %9s %9s  %s\n" path conns rps p50 p99 errors
start
run 64 /health
run 64 /api/echo -s "$W/echo.lua"
stop

echo "== collapse curve: --capacity 50 --latency-ms 20, no protection"
printf "%-22s %6s %10s %9s %9s  %s\n" path conns rps p50 p99 errors
start --capacity 50 --latency-ms 20
for c in 25 50 100 200 400; do run "$c" /api/status; done
stop
