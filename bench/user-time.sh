#!/usr/bin/env bash
# User and system CPU per proxied request, Fluxgate next to nginx (a measurement, not
# a test): one nginx upstream on CPU 0, nginx (one worker, keep-alive 512) and Fluxgate
# (`workers: 1`) as proxies on CPU 1, `wrk -t1 -c64 GET /health` on CPU 0 for DUR
# seconds against each, ROUNDS times alternating; /proc/PID/stat's utime and stime of
# the proxy process (nginx: its worker) over the run, divided by the requests served.
# A third proxy, `relay` (Sources/RelayFloor, one event loop on CPU 1), is the cheapest
# keep-alive relay SwiftNIO allows — no parsing, no admission, one upstream connection
# per client — so the gap between it and nginx is NIO's and the gap between it and
# Fluxgate is the gateway's own work.
# Needs nginx-light and wrk (apt). Env: DUR (5), ROUNDS (3), CONNS (64: wrk's connections),
# REQUEST (health; echo: POST /api/echo, 6.6 KB each way, as compare.sh's echo row).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19771 18771 18772 20772 18773
bench_setup usertime
bench_echo_payload
bench_nginx_health_upstream 19771 0
bench_fluxgate_config 18772 19771 "" "${FLUXGATE_YAML:-}" >"$W/fluxgate.yaml"
bench_nginx_proxy 18771 19771
bench_relay_floor 18773 19771
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
bench_wait upstream 19771; bench_wait fluxgate 18772; bench_wait relay 18773
echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk -t1 -c${CONNS:-64} -d${DUR}s $( [ "${REQUEST:-health}" = echo ] && echo "POST /api/echo (6.6 KB)" || echo "GET /health"); CPU per request of the proxy process"
for round in $(seq "$ROUNDS"); do
  for target in nginx:18771:$nginx_worker relay:18773:$relay_pid fluxgate:18772:$fluxgate_pid; do
    IFS=: read -r name port pid <<<"$target"
    bench_cpu_round "$round" "$name" "$port" "$pid" "$DUR"
  done
done
