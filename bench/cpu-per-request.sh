#!/usr/bin/env bash
# CPU time per proxied request, A/B (a measurement, not a test): two Fluxgate
# processes (A = this build or FLUXGATE_BIN, B = FLUXGATE_B) on CPU 1 in front of
# one nginx upstream; hey sends N keep-alive GET /health (32 connections, CPU 0) to A,
# then to B, ROUNDS times alternating. Each process's user+system CPU ticks
# (/proc/PID/stat) over its N requests give microseconds of CPU per request — a
# steadier comparison of a small per-request cost than requests/s at saturation.
# (valgrind's callgrind crashes in libdispatch's signal thread on these binaries and
# perf's counters are not supported on this VM, so CPU time it is.)
# Needs nginx-light and hey (apt). Env: N (200000), ROUNDS (5), FLUXGATE_B (required),
# FLUXGATE_YAML / FLUXGATE_B_YAML: YAML lines added to A's / B's config.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-200000}; ROUNDS=${ROUNDS:-5}
[ -n "${FLUXGATE_B:-}" ] || { echo "set FLUXGATE_B to the binary to compare with" >&2; exit 2; }
bench_need nginx "apt-get install -y nginx-light"
bench_need hey "apt-get install -y hey"
bench_ports_free 19751 18751 18752 20751 20752
bench_setup cpu
bench_nginx_health_upstream 19751 0
config() { bench_fluxgate_config "$1" 19751 "" "$2"; }  # PORT EXTRA
config 18751 "${FLUXGATE_YAML:-}" >"$W/a.yaml"
config 18752 "${FLUXGATE_B_YAML:-}" >"$W/b.yaml"
taskset -c 1 "$BIN" --config "$W/a.yaml" >"$W/a.log" 2>&1 & a=$!; pids+=("$a")
taskset -c 1 "$FLUXGATE_B" --config "$W/b.yaml" >"$W/b.log" 2>&1 & b=$!; pids+=("$b")
bench_wait A 18751; bench_wait B 18752
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "# $(date -u +%FT%TZ) $(nproc) cores; A=$BIN ${FLUXGATE_YAML:+($FLUXGATE_YAML)}; B=$FLUXGATE_B ${FLUXGATE_B_YAML:+($FLUXGATE_B_YAML)}; N=$N"
for target in A:18751:$a B:18752:$b; do  # warm-up
  IFS=: read -r _ port _ <<<"$target"; taskset -c 0 hey -n 20000 -c 32 "http://127.0.0.1:$port/health" >/dev/null
done
declare -A total
for round in $(seq "$ROUNDS"); do
  for target in A:18751:$a B:18752:$b; do
    IFS=: read -r name port pid <<<"$target"
    t0=$(ticks "$pid")
    taskset -c 0 hey -n "$N" -c 32 "http://127.0.0.1:$port/health" >"$W/hey.txt"
    t1=$(ticks "$pid")
    grep -q "\[200\].*$N responses" "$W/hey.txt" || { echo "$name: not all $N answered 200" >&2; exit 1; }
    us=$(python3 -c "print(f'{($t1 - $t0) / $hz * 1e6 / $N:.2f}')")
    total[$name]=$(python3 -c "print(${total[$name]:-0} + $us)")
    echo "round $round $name: $((t1 - t0)) ticks, $us CPU-us per request"
  done
done
python3 -c "a, b = ${total[A]} / $ROUNDS, ${total[B]} / $ROUNDS; print(f'mean: A {a:.2f}, B {b:.2f} CPU-us per request; A/B = {a / b:.3f}')"
