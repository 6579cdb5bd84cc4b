#!/usr/bin/env bash
# A/B of two Fluxgate builds on the small-request path (a measurement, not a test):
# one nginx upstream on CPU 0, build A and build B (`workers: 1`) both on CPU 1, and
# `wrk -t1 -c64 GET /health` (CPU 0) against A then B for DUR seconds, ROUNDS times
# alternating; requests/s and the user and system CPU per request of each process
# (/proc/PID/stat). Usage: bench/user-time-ab.sh BIN_A BIN_B. Needs nginx-light, wrk.
# Env: DUR (5), ROUNDS (5).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] || { echo "usage: $0 BIN_A BIN_B" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-5}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19791 18792 20792 18794 20794
bench_setup userab
bench_nginx_health_upstream 19791 0
for side in A:18792:20792 B:18794:20794; do
  IFS=: read -r name port admin <<<"$side"
  cat >"$W/$name.yaml" <<C
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$admin"
workers: 1
upstreams: [{ url: "http://127.0.0.1:19791", max_concurrency: 90000 }]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
demo: { enabled: false }
C
done
taskset -c 1 "$A" --config "$W/A.yaml" >"$W/A.log" 2>&1 & pids+=($!); a_pid=$!
taskset -c 1 "$B" --config "$W/B.yaml" >"$W/B.log" 2>&1 & pids+=($!); b_pid=$!
bench_wait upstream 19791; bench_wait A 18792; bench_wait B 18794
hz=$(getconf CLK_TCK)
echo "# $(date -u +%FT%TZ) $(nproc) cores; A=$A B=$B; wrk -t1 -c64 -d${DUR}s GET /health, alternating"
for round in $(seq "$ROUNDS"); do
  for side in A:18792:$a_pid B:18794:$b_pid; do
    IFS=: read -r name port pid <<<"$side"
    taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/health" >/dev/null
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    requests=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" "http://127.0.0.1:$port/health" | awk '/requests in/{print $1}' | tr -d ,)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    python3 -c "import sys; n, r, u, s, hz, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]); print(f'round {sys.argv[7]} {n} {r / d:8.0f}/s  user {u * 1e6 / hz / r:5.2f} us  system {s * 1e6 / hz / r:5.2f} us per request')" \
      "$name" "$requests" $((u1 - u0)) $((s1 - s0)) "$hz" "$DUR" "$round"
  done
done
