#!/usr/bin/env bash
# A reconnect storm beside steady traffic (a measurement, not a test): the release
# gateway (`workers: 1`, CPU 1) in front of one demo upstream (CPU 0); wrk keeps 64
# keep-alive connections busy with GET /health (CPU 0) for DUR seconds, and STORMS
# times during it bench/connect_storm.py opens N new connections at once (one request
# each). Prints wrk's latency distribution (what the storm costs the clients already
# connected) and each storm's per-connection times (what the newcomers wait: seconds
# here mean the backlog overflowed and handshakes were dropped, docs/RELIABILITY.md).
#   bash bench/connect-storm.sh
#   FLUXGATE_BIN=/path/to/other/fluxgate bash bench/connect-storm.sh   # A/B
# Env: DUR (12), N (5000), STORMS (3). Needs wrk (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-12}; N=${N:-5000}; STORMS=${STORMS:-3}
GW=${GW_PORT:-18620}; U=${U_PORT:-19621}; ADMIN=$(( GW + 2000 ))
bench_need wrk "apt-get install -y wrk"
bench_ports_free "$GW" "$ADMIN" "$U"
bench_setup connect-storm

{ bench_gateway_head "$GW"; cat <<YAML
rate_limit: { per_client: { enabled: false } }
upstreams: [{ url: "http://127.0.0.1:$U", max_concurrency: 20000 }]
YAML
} >"$W/gateway.yaml"
taskset -c 0 "$BIN" demo-upstream --port "$U" --instance a --workers 1 --latency-ms 0 >"$W/demo.log" 2>&1 & pids+=("$!")
bench_wait "demo upstream" "$U"
taskset -c 1 "$BIN" --config "$W/gateway.yaml" >"$W/gateway.out" 2>"$W/gateway.log" & pids+=("$!")
bench_wait gateway "$ADMIN" /readyz

before=$(nstat -az 2>/dev/null | awk '/TcpExtListenOverflows/ { print $2 }')
taskset -c 0 wrk -t1 -c64 -d"${DUR}s" --latency "http://127.0.0.1:$GW/health" >"$W/wrk.txt" 2>&1 &
WRK=$!
gap=$(( DUR / (STORMS + 1) ))
for i in $(seq "$STORMS"); do
  sleep "$gap"
  python3 bench/connect_storm.py "$GW" "$N"
done
wait "$WRK"
after=$(nstat -az 2>/dev/null | awk '/TcpExtListenOverflows/ { print $2 }')
echo "wrk (64 connected clients, ${DUR}s): $(grep -E 'Requests/sec' "$W/wrk.txt" | tr -s ' ')"
grep -E '^\s+(50|75|90|99)%|Latency  ' "$W/wrk.txt"
echo "TcpExtListenOverflows during the run (machine-wide): $(( ${after:-0} - ${before:-0} ))"
