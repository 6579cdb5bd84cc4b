#!/usr/bin/env bash
# What each proxy costs the *other* CPU (a measurement, not a test). bench/compare.sh
# runs wrk and the upstream on CPU 0 and the proxy alone on CPU 1; when CPU 0 is the
# one with no idle time (the echo row: 6.6 KB each way), the requests/s of a row are
# set by how much CPU 0 spends per request — and part of that depends on the proxy:
# every time the proxy has gone to sleep, the next write into its sockets (from wrk or
# the upstream, on CPU 0) has to wake it, and every time wrk has gone to sleep, the
# proxy's next response wakes wrk, which then preempts the upstream on CPU 0 with a
# rescheduling interrupt. This script shows those costs side by side.
#
# Set-up as bench/user-time.sh: one nginx upstream on CPU 0, nginx (one worker,
# keep-alive 512), the relay floor (Sources/RelayFloor) and Fluxgate (`workers: 1`) as
# proxies on CPU 1, `wrk -t1 -c64` on CPU 0 for DUR seconds against each, ROUNDS
# times alternating. Per request, for each proxy:
#   - requests/s;
#   - CPU 0's user, system, interrupt (softirq: loopback packets are received there)
#     and steal time (/proc/stat) and the upstream worker's share
#     (/proc/PID/stat): what is left of CPU 0's system time is wrk's;
#   - the proxy's own user + system time;
#   - how often the proxy went to sleep (voluntary context switches of all its
#     threads), how often wrk did (GNU time's %w), and CPU 0's rescheduling
#     interrupts (RES in /proc/interrupts).
# FLUXGATE_BIN_B: a second Fluxgate binary measured beside the first (`fluxgate-b`).
# Needs nginx-light, wrk and time (apt). Env: DUR (5), ROUNDS (3), CONNS (64),
# REQUEST (echo, the default here; health: GET /health).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-64}; REQUEST=${REQUEST:-echo}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }
bench_ports_free 19791 18791 18792 20792 18793 18794 20794
bench_setup loadgencost
bench_echo_payload
bench_nginx_health_upstream 19791 0
bench_nginx_proxy 18791 19791
bench_relay_floor 18793 19791
bench_fluxgate_config 18792 19791 >"$W/fluxgate.yaml"
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
targets="fluxgate:18792:$fluxgate_pid"
if [ -n "${FLUXGATE_BIN_B:-}" ]; then
  bench_fluxgate_config 18794 19791 >"$W/fluxgate-b.yaml"
  taskset -c 1 "$FLUXGATE_BIN_B" --config "$W/fluxgate-b.yaml" >"$W/fluxgate-b.log" 2>&1 & pids+=($!)
  targets+=" fluxgate-b:18794:$!"
  bench_wait fluxgate-b 18794
fi
bench_wait upstream 19791; bench_wait fluxgate 18792; bench_wait relay 18793
upstream_worker=$(pgrep -P "$(cat "$W/upstream.pid")" | head -1)
path=/health; wrk_args=()
if [ "$REQUEST" = echo ]; then path=/api/echo; wrk_args=(-s "$W/echo.lua"); fi

# CPU 0's user+nice, system, interrupt+softirq and steal ticks; the RES interrupts of CPU 0; a process's user
# and system ticks; the voluntary context switches of all of a process's threads.
cpu0_ticks() { awk '/^cpu0 /{print $2 + $3, $4, $7 + $8, $9}' /proc/stat; }
cpu0_res() { awk '$1 == "RES:" {print $2}' /proc/interrupts; }
proc_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
proc_sleeps() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/{n += $2} END{print n}'; }

echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk -t1 -c$CONNS -d${DUR}s $( [ "$REQUEST" = echo ] && echo "POST /api/echo (6.6 KB each way)" || echo "GET /health") on CPU 0 with the upstream; proxies on CPU 1"
echo "# per request: CPU 0 user/system/softirq/steal µs (the upstream's part of system), the proxy's user+system µs, sleeps of the proxy and of wrk, RES interrupts on CPU 0"
for round in $(seq "$ROUNDS"); do
  for target in nginx:18791:$nginx_worker relay:18793:$relay_pid $targets; do
    IFS=: read -r name port pid <<<"$target"
    taskset -c 0 wrk -t1 -c"$CONNS" -d1s "${wrk_args[@]}" "http://127.0.0.1:$port$path" >/dev/null
    read -r cu0 cs0 ci0 cst0 < <(cpu0_ticks); res0=$(cpu0_res)
    read -r uu0 us0 < <(proc_ticks "$upstream_worker"); read -r pu0 ps0 < <(proc_ticks "$pid"); sl0=$(proc_sleeps "$pid")
    out=$(taskset -c 0 /usr/bin/time -f "wrk-sleeps %w" wrk -t1 -c"$CONNS" -d"${DUR}s" "${wrk_args[@]}" "http://127.0.0.1:$port$path" 2>&1)
    read -r cu1 cs1 ci1 cst1 < <(cpu0_ticks); res1=$(cpu0_res)
    read -r uu1 us1 < <(proc_ticks "$upstream_worker"); read -r pu1 ps1 < <(proc_ticks "$pid"); sl1=$(proc_sleeps "$pid")
    requests=$(awk '/requests in/{print $1}' <<<"$out" | tr -d ,)
    wrk_sleeps=$(awk '/^wrk-sleeps/{print $2}' <<<"$out")
    python3 - "$round" "$name" "$requests" "$DUR" "$(getconf CLK_TCK)" \
      $((cu1 - cu0)) $((cs1 - cs0)) $((ci1 - ci0)) $((cst1 - cst0)) $((us1 - us0)) $((pu1 - pu0 + ps1 - ps0)) \
      $((sl1 - sl0)) "$wrk_sleeps" $((res1 - res0)) <<'PY'
import sys
rnd, name = sys.argv[1], sys.argv[2]
r, dur, hz = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
user, system, irq, steal, up_system, proxy, proxy_sleeps, wrk_sleeps, res = (int(x) for x in sys.argv[6:15])
us = lambda ticks: ticks * 1e6 / hz / r
print(f"round {rnd} {name:10} {r / dur:7.0f}/s  cpu0 user {us(user):5.2f} system {us(system):5.2f} "
      f"(upstream {us(up_system):5.2f}) softirq {us(irq):5.2f} steal {us(steal):5.2f} total {us(user + system + irq + steal):5.2f} µs  "
      f"proxy {us(proxy):5.2f} µs  sleeps: proxy {proxy_sleeps / r:4.2f} wrk {wrk_sleeps / r:4.2f}  RES {res / r:4.2f}")
PY
  done
done
