#!/usr/bin/env bash
# Many clients that pipeline requests and read nothing, against a small
# `limits.stalled_client_bytes` (docs/SECURITY.md, "Bounded everything"). N (1 000)
# connections, each with a 4 KiB receive buffer, send 2 000 pipelined `GET /health`
# (66 KB) through Fluxgate (its built-in demo upstreams, LIMIT = 16 MiB, send timeout
# raised to 90 s so the budget, not the timeout, is what acts) and read nothing for
# SECS (30) seconds. The gateway's RSS, what it holds for stalled clients and the
# connections it closed are printed every second (`stalled_clients.py`).
# MODE=uploads: instead, slow uploads that each send 60 000 of a 65 536-byte body and
# then a byte every 5 s (bodies read before admission count too); .ci/run runs it short.
# Exits non-zero when what the gateway held went past LIMIT (plus one connection's
# worth: a stall is counted when it starts, then the longest stalled are closed) or
# when nothing was closed (unbounded, these clients make the gateway hold ~55 MiB:
# docs/results/stalled-budget-2026-12-03/).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-18690}; UPSTREAM_PORT=${UPSTREAM_PORT:-18691}
N=${N:-1000}; SECS=${SECS:-30}; LIMIT=${LIMIT:-16777216}; MODE=${MODE:-pipeline}
bench_ports_free "$PORT" "$((PORT + 2000))" "$UPSTREAM_PORT" "$((UPSTREAM_PORT + 1))" "$((UPSTREAM_PORT + 2))"
bench_setup stalled-clients
cat >"$W/fluxgate.yaml" <<C
listen: "127.0.0.1:$PORT"
admin_listen: "127.0.0.1:$((PORT + 2000))"
reload: { watch: false }
# max_requests_per_connection 0: each client pipelines 2 000 requests, and at the
# default (1 000) the 1 000th answer closes the connection — on the VM of 2026-12-06 the
# kernel's buffers took those 1 000 answers whole, so the gateway held next to nothing
# and every connection was gone at t+5 s (its lingering close), the budget untested.
limits: { stalled_client_bytes: $LIMIT, max_requests_per_connection: 0 }
timeouts: { client_send: 90s, idle: 120s }
demo: { enabled: true, base_port: $UPSTREAM_PORT }
C
"$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); gateway=$!
bench_wait fluxgate "$PORT"
echo "# $(date -u +%FT%TZ) $(nproc) cores; $(git rev-parse --short HEAD 2>/dev/null || echo unknown); N=$N SECS=$SECS LIMIT=$LIMIT MODE=$MODE"
python3 "$(dirname "$0")/stalled_clients.py" "$PORT" "$gateway" "$N" "$SECS" "127.0.0.1:$((PORT + 2000))" "$LIMIT" "$MODE"
