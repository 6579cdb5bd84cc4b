#!/usr/bin/env bash
# What parking costs a connection that wakes (a measurement, not a test): two Fluxgates
# (`workers: 1`, CPU 1) before one nginx upstream (CPU 0) — one parking connections idle
# for 1 ms (`timeouts.park_after: 1ms`), one never parking (`0s`) — each driven by
# `wrk -t1 -c64` (CPU 0) whose connections think 3 ms between requests, so nearly every
# request of the first finds its connection parked and rebuilds it. Per request of each:
# the proxy's user and system CPU (/proc/PID/stat) and, for the parking one, parks
# (fluxgate_client_parks_total). The difference is what a wake-up costs; with the
# default `park_after: 5s` a connection pays it at most once per 5 s of silence.
# Env: DUR (5), ROUNDS (3), THINK_MS (3). Needs nginx-light and wrk (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; THINK_MS=${THINK_MS:-3}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19795 18795 18796
bench_setup parkcost
bench_nginx_health_upstream 19795 0
bench_fluxgate_config 18795 19795 "" "timeouts: { park_after: 1ms }" >"$W/parking.yaml"
bench_fluxgate_config 18796 19795 "" "timeouts: { park_after: 0s }" >"$W/never.yaml"
taskset -c 1 "$BIN" --config "$W/parking.yaml" >"$W/parking.log" 2>&1 & pids+=($!); parking_pid=$!
taskset -c 1 "$BIN" --config "$W/never.yaml" >"$W/never.log" 2>&1 & pids+=($!); never_pid=$!
bench_wait upstream 19795; bench_wait parking 18795; bench_wait never 18796
cat >"$W/think.lua" <<LUA
request = function() return wrk.format("GET", "/health") end
delay = function() return $THINK_MS end
LUA
parks() { curl -s "http://127.0.0.1:$(( $1 + 2000 ))/metrics" | awk '/^fluxgate_client_parks_total /{print int($2)}'; }
echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk -t1 -c64 -d${DUR}s GET /health, ${THINK_MS} ms between a connection's requests; $BIN"
for round in $(seq "$ROUNDS"); do
  for target in parking:18795:$parking_pid never:18796:$never_pid; do
    IFS=: read -r name port pid <<<"$target"
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    p0=$(parks "$port")
    requests=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" -s "$W/think.lua" "http://127.0.0.1:$port/" | awk '/requests in/{print $1}' | tr -d ,)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    p1=$(parks "$port")
    python3 - "$round" "$name" "$requests" $((u1 - u0)) $((s1 - s0)) "$(getconf CLK_TCK)" $((p1 - p0)) <<'PY'
import sys
rnd, name, r, u, s, hz, parks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
us = lambda ticks: ticks * 1e6 / hz / r
print(f"round {rnd} {name:8} {r:7} requests  parks per request {parks / r:4.2f}  user {us(u):6.2f} us  system {us(s):6.2f} us  total {us(u + s):6.2f} us per request")
PY
  done
done
