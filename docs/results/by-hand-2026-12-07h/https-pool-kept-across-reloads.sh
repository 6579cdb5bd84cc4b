#!/usr/bin/env bash
# A (workers 1) -> https://localhost:18591 (B: Fluxgate terminating TLS) -> demo upstream; wrk through A for 20 s
# while A gets SIGHUP every second (20 reloads that change nothing); B's client connections counted (A's pooled
# upstream connections, its health probes, the readiness checks) — each new one a TLS handshake.
# B runs with limits.max_requests_per_connection: 0, so that its count shows A's pool alone (at the default B
# recycles every connection after 1000 requests). BIN=/tmp/fluxgate-old is the same tree with GatewaySettings.resolve
# passing previous: nil (every reload builds the contexts again: the behaviour before this change).
# Then: cert.pem written again in place (its stamp changes) and one more SIGHUP — the pool closes, as it must.
set -u
BIN=${BIN:-/work/main/.build/release/fluxgate}; cd /tmp/rl; rm -f a.log b.log
$BIN demo-upstream --port 19581 --workers 1 > up.log 2>&1 & U=$!
$BIN --config b.yaml > b.log 2>&1 & Bp=$!
for _ in $(seq 50); do curl -sk -o /dev/null https://127.0.0.1:18591/health && break; sleep 0.1; done
$BIN --config a.yaml > a.log 2>&1 & Ap=$!
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:20590/readyz)" = 200 ] && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD))"
b() { curl -s http://127.0.0.1:20591/metrics | awk '/^fluxgate_client_connections_total/{print $2}'; }
echo "B's client connections before the load: $(b)"
(for i in $(seq 20); do sleep 1; kill -HUP $Ap; done) & R=$!
wrk -t2 -c32 -d20s http://127.0.0.1:18590/api/status
wait $R
echo "== A's reloads: $(grep -c 'configuration reloaded' a.log); their changes: $(grep 'configuration reloaded' a.log | grep -o 'changes=[^=]*version' | sort | uniq -c | tr -s ' ')"
echo "error or warning lines in A: $(grep -ci 'error\|warning' a.log)"
curl -s http://127.0.0.1:20590/metrics | grep -E "^fluxgate_request_outcomes_total" | grep -v " 0$"
echo "B's client connections after 20 s and 20 reloads: $(b)"
cp cert.pem cert.new && mv cert.new cert.pem; kill -HUP $Ap; sleep 1
curl -s -o /dev/null http://127.0.0.1:18590/api/status
echo "after cert.pem was written again and one more SIGHUP: A logged '$(grep 'configuration reloaded' a.log | tail -1 | grep -o 'changes=[^=]*version')'; B's client connections: $(b)"
kill -TERM $Ap; wait $Ap; echo "A drain exit $?"; kill $Bp $U; wait 2>/dev/null
