#!/usr/bin/env bash
# A/B of two Fluxgate builds on the small-request path (a measurement, not a test):
# one nginx upstream on CPU 0, build A and build B (`workers: 1`) both on CPU 1, and
# `wrk -t1 -c64 GET /health` (CPU 0) against A then B for DUR seconds, ROUNDS times
# alternating; requests/s and the user and system CPU per request of each process
# (/proc/PID/stat). Usage: bench/user-time-ab.sh BIN_A BIN_B. Needs nginx-light, wrk.
# Env: DUR (5), ROUNDS (5), CONNS (64), REQUEST (health; echo: POST /api/echo, 6.6 KB
# each way, as compare.sh's echo row; browser: GET /health with a browser's 14 fields),
# SHED=1 (both builds shed every request: a global bucket of 1/s, compare.sh's shed row),
# WORKERS=N (both builds with `workers: N`, unpinned, and `wrk -tN` unpinned: shared
# state between event loops shows; the upstream stays on CPU 0 and everything competes
# for the cores, so compare CPU per request more than requests/s).
set -euo pipefail
USAGE_ARGS=any; source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] || { echo "usage: $0 BIN_A BIN_B" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-5}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19791 18792 20792 18794 20794
bench_setup userab
bench_echo_payload
bench_nginx_health_upstream 19791 0
global=""; [ "${SHED:-0}" = 1 ] && global=$BENCH_SHED_ALL
bench_fluxgate_config 18792 19791 "$global" >"$W/A.yaml"
bench_fluxgate_config 18794 19791 "$global" >"$W/B.yaml"
cpus=1
if [ "${WORKERS:-1}" -gt 1 ]; then
  sed -i "s/^workers: 1$/workers: $WORKERS/" "$W/A.yaml" "$W/B.yaml"
  cpus=0-$(( $(nproc) - 1 ))
fi
taskset -c "$cpus" "$A" --config "$W/A.yaml" >"$W/A.log" 2>&1 & pids+=($!); a_pid=$!
taskset -c "$cpus" "$B" --config "$W/B.yaml" >"$W/B.log" 2>&1 & pids+=($!); b_pid=$!
bench_wait upstream 19791; bench_wait A 18792; bench_wait B 18794
what="GET /health"; [ "${REQUEST:-health}" = echo ] && what="POST /api/echo (6.6 KB)"
[ "${REQUEST:-health}" = browser ] && what="GET /health with a browser's 14 header fields"
[ "${SHED:-0}" = 1 ] && what="$what, every one shed (503)"
if [ "${WORKERS:-1}" -gt 1 ]; then
  echo "# $(date -u +%FT%TZ) $(nproc) cores; A=$A B=$B; workers: $WORKERS, every process unpinned; wrk -t$WORKERS -c${CONNS:-64} -d${DUR}s $what, alternating"
else
  echo "# $(date -u +%FT%TZ) $(nproc) cores; A=$A B=$B; wrk -t1 -c${CONNS:-64} -d${DUR}s $what, alternating"
fi
for round in $(seq "$ROUNDS"); do
  for side in A:18792:$a_pid B:18794:$b_pid; do
    IFS=: read -r name port pid <<<"$side"
    bench_cpu_round "$round" "$name" "$port" "$pid" "$DUR"
  done
done
