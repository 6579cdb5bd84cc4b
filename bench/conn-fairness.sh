#!/usr/bin/env bash
# Per-connection fairness (a diagnostic, not a test): nginx and Fluxgate, one worker /
# event loop each on CPU 1, in front of compare.sh's upstream nginx (CPU 0), under
# `wrk -tN -cN` (one connection per wrk thread, CPU 0) with bench/conn_fairness.lua:
# how many requests each connection had answered, and their spread (cv = stdev/mean).
# A proxy that serves some connections more often than others shows a wide spread —
# the question behind p99 at 256 connections in docs/PERFORMANCE.md.
# Env: CONNS (256), DUR (8), ROUNDS (2), EXTRA (YAML lines added to Fluxgate's config).
# Needs nginx-light and wrk (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-256} DUR=${DUR:-8} ROUNDS=${ROUNDS:-2}
bench_setup fair
bench_small_request_proxies
for round in $(seq "$ROUNDS"); do
  for t in nginx:18601 fluxgate:18603; do
    printf "%-9s r%s " "${t%%:*}" "$round"
    taskset -c 0 wrk -t"$CONNS" -c"$CONNS" -d"${DUR}s" --latency -s bench/conn_fairness.lua "http://127.0.0.1:${t#*:}/health" \
      | awk '/^connections/ { c = $0 } /Requests\/sec/ { r = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } END { printf "%s rps p50 %s p99 %s | %s\n", r, p50, p99, c }'
  done
done
