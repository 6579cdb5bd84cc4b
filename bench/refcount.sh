#!/usr/bin/env bash
# Reference-counting calls per proxied request (a measurement, not a test):
# Fluxgate (`workers: 1`) and the relay floor (Sources/RelayFloor: the cheapest
# keep-alive relay SwiftNIO allows) in front of one nginx worker, each under
# `wrk -t1 -c64 GET /health` for DUR seconds while `perf stat` counts uprobes on
# swift_retain and swift_release (libswiftCore) in that process, and on the runtime's
# slow paths (retain_slow, release_slow: an object with a side table, or a deinit) and
# weak loads. Counts do not depend on the machine's load, which timed runs on a noisy
# VM do: on the 2-core KVM machine of 2026-12-01 one build's user time per request
# varied by ±30 % between rounds, so changes there were judged by these. Uprobes slow every
# call a hundredfold, so request rates are meaningless and the process handles fewer
# requests per event-loop wake-up than at full speed (per-wake-up work weighs more):
# compare the two processes with each other, under the same conditions. (Allocations
# are bench/malloc-count.sh's, measured at full speed.)
# Needs perf (apt-get install -y linux-perf), nginx-light and wrk; run as root.
# Env: DUR (2); FLUXGATE_BIN measures another build (bench/lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-2}
bench_need perf "apt-get install -y linux-perf"
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19781 18782 20782 18783
bench_setup refcount
bench_nginx_health_upstream 19781 0
core=$(ldd "$BIN" | awk '/libswiftCore/ {print $3}')
perf probe -q -x "$core" swift_retain 2>/dev/null || true
perf probe -q -x "$core" swift_release 2>/dev/null || true
# The runtime's slow paths (retain_slow, release_slow): taken on every retain/release
# of an object with a side table (one that was ever weakly referenced), and by every
# deinit; and weak loads.
perf probe -q -x "$core" swift_weakLoadStrong 2>/dev/null || true
# (C++ symbols, found by address: perf probe does not take their mangled names.)
for slow in retain_slow:_ZN5swift9RefCountsINS_13RefCountBitsTILNS_19RefCountInlinednessE1EEEE13incrementSlowES3_j \
  release_slow:_ZN5swift9RefCountsINS_13RefCountBitsTILNS_19RefCountInlinednessE1EEEE15doDecrementSlowILNS_13PerformDeinitE1EEEbS3_j; do
  address=$(nm "$core" | awk -v s="${slow#*:}" '$3 == s {print "0x" $1}')
  perf probe -q -x "$core" -a "${slow%%:*}=$address" 2>/dev/null || true
done
bench_fluxgate_config 18782 19781 >"$W/fluxgate.yaml"
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
bench_relay_floor 18783 19781
bench_wait upstream 19781; bench_wait fluxgate 18782; bench_wait relay 18783
echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk -t1 -c64 -d${DUR}s GET /health; uprobe counts in the proxy process per request"
for target in fluxgate:18782:$fluxgate_pid relay:18783:$relay_pid; do
  IFS=: read -r name port pid <<<"$target"
  taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/health" >/dev/null  # connections open and warm
  perf stat -x, -e probe_libswiftCore:swift_retain,probe_libswiftCore:swift_release \
    -e probe_libswiftCore:retain_slow,probe_libswiftCore:release_slow,probe_libswiftCore:swift_weakLoadStrong \
    -p "$pid" -o "$W/$name.stat" -- sleep $((DUR + 1)) &
  stat_pid=$!
  sleep 0.5
  requests=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" "http://127.0.0.1:$port/health" | awk '/requests in/{print $1}' | tr -d ,)
  wait "$stat_pid" || true
  awk -F, -v name="$name" -v r="$requests" '/probe_/ {split($3, e, ":"); printf "%-9s %7d requests  %-14s %10d  %7.2f per request\n", name, r, e[2], $1, $1 / r}' "$W/$name.stat"
done
