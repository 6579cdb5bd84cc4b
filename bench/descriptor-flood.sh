#!/usr/bin/env bash
# A flood of idle client connections against the gateway's descriptor limit (a check,
# run by .ci/run; docs/SECURITY.md). Fluxgate runs under `prlimit --nofile=LIMIT` (256)
# in front of one nginx upstream; a victim opens 8 keep-alive connections first, then
# an attacker opens up to 2 × LIMIT connections that each send one request and stay
# idle. The victim's connections must still be served — 20 rounds of a request on all 8
# at once, which needs 8 upstream connections, all 200: client connections may never
# take the descriptors the upstream side needs. New
# connections beyond `limits.max_connections` are refused with 503
# `too_many_connections`, which the attacker's tally shows. Then 20 newcomers each open a
# connection and send one request: with parking off (the default here) they are refused
# at the cap; with PARK_AFTER set, the attacker's idle connections are parked and each
# newcomer closes the one parked longest and is served (docs/SECURITY.md).
#   bash bench/descriptor-flood.sh                     # the automatic limit, parking off
#   MAX_CONNECTIONS=230 bash bench/descriptor-flood.sh # another cap (230: 90 % of 256, the old automatic value)
#   PARK_AFTER=500ms bash bench/descriptor-flood.sh    # idle connections parked: newcomers make room
# Exits non-zero when a victim request fails (and, with PARK_AFTER, when a newcomer is not served).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
LIMIT=${LIMIT:-256}; PORT=${PORT:-18490}; UPSTREAM_PORT=${UPSTREAM_PORT:-18491}
bench_need nginx "apt-get install nginx-light"
bench_need prlimit "apt-get install util-linux"
bench_ports_free "$PORT" "$UPSTREAM_PORT" "$((PORT + 2000))"
bench_setup descriptor-flood
bench_nginx_health_upstream "$UPSTREAM_PORT" 0
PARK_AFTER=${PARK_AFTER:-0s}
extra="timeouts: { park_after: $PARK_AFTER }
limits: { max_connections: ${MAX_CONNECTIONS:-0} }"  # 0: the automatic value
bench_fluxgate_config "$PORT" "$UPSTREAM_PORT" "" "$extra" >"$W/fluxgate.yaml"
prlimit --nofile="$LIMIT" "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!)
bench_wait upstream "$UPSTREAM_PORT"; bench_wait fluxgate "$PORT"
echo "# $(date -u +%FT%TZ) $(nproc) cores; descriptor limit $LIMIT; $(grep -o 'max_connections=[0-9]*' "$W/fluxgate.log" | head -1)"
python3 - "$PORT" "$LIMIT" "$PARK_AFTER" <<'PY'
import socket, sys, collections, time
port, limit, park_after = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
parking = park_after not in ("0s", "0ms", "0")
REQ = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
def exchange(s):
    """One request on s; the status line's code, or what went wrong."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk: return "closed"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk: return "closed"
        body += chunk
    status = head.split(b" ")[1].decode()
    return status + (" " + body.split(b'"error":"')[1].split(b'"')[0].decode() if b'"error":"' in body else "")
def send(s): s.sendall(REQ)
victims = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
for v in victims: send(v)
first = collections.Counter(exchange(v) for v in victims)
held, tally = [], collections.Counter()
for _ in range(2 * limit):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        send(s)
        outcome = exchange(s)
    except OSError as error:
        outcome = type(error).__name__
    tally[outcome] += 1
    if outcome.startswith("200"): held.append(s)
print(f"attacker: {2 * limit} connections tried, {len(held)} held idle after a 200; outcomes {dict(tally)}")
results = collections.Counter()
for _ in range(20):
    try:
        for v in victims: send(v)
        for v in victims: results[exchange(v)] += 1
    except OSError as error: results[type(error).__name__] += 1
print(f"victim (8 connections opened before the flood): first {dict(first)}; then {dict(results)}")
ok = results == collections.Counter({"200": 160})
if parking:
    time.sleep(2)  # the attacker's connections park
newcomers = collections.Counter()
for _ in range(20):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        send(s)
        newcomers[exchange(s)] += 1
        s.close()
    except OSError as error:
        newcomers[type(error).__name__] += 1
print(f"newcomers (20 new connections after the flood, one request each): {dict(newcomers)}")
if parking: ok = ok and newcomers == collections.Counter({"200": 20})
sys.exit(0 if ok else 1)
PY
