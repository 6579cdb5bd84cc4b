#!/usr/bin/env bash
# A client that pipelines requests without reading the answers (a check, run by
# .ci/run; docs/SECURITY.md). One connection with a 4 KiB receive buffer sends
# REQUESTS (200 000) pipelined `GET /health` — 6.8 MB — through Fluxgate (`workers: 1`,
# its built-in demo upstreams, default limits but the request bound) and reads nothing for HOLD seconds (5),
# then reads every answer. The gateway must stop answering (and reading) while its
# answers wait for the client, so its memory stays flat, and then answer every
# request, in order, once the client reads. Before 2026-12-03 it went on answering
# while the answers waited, whenever the upstream's answer reached it on a read already
# under way (the per-exchange pause stops only the next read): one connection took the
# gateway from 31 to 206 MB (docs/results/pipeline-flood-2026-12-03/).
# Then the same against the admin listener: ADMIN_REQUESTS (3 000) pipelined
# `GET /metrics` (before 2026-12-03 it answered them all into memory too: 234 MB from
# one connection pipelining `GET /metrics`).
# Exits non-zero when the gateway's RSS grew by more than 8 MiB while a client read
# nothing, or when an answer is missing or neither 200 nor 503 (a shed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-18590}; UPSTREAM_PORT=${UPSTREAM_PORT:-18591}
bench_ports_free "$PORT" "$((PORT + 2000))" "$UPSTREAM_PORT" "$((UPSTREAM_PORT + 1))" "$((UPSTREAM_PORT + 2))"
bench_setup pipeline-flood
# The gateway as the README starts it (its built-in demo upstreams, default limits),
# one event loop — but with no bound on requests per connection (MAX_REQUESTS, 0): at
# the default 1000 the connection ends after its 1000th answer (nginx's
# keepalive_requests does the same), and this client, still sending megabytes it will
# never have answered, outlasts the lingering close's 1 MiB and meets a reset that
# throws away the answers it had not read yet (tried: 16 of them arrived).
cat >"$W/fluxgate.yaml" <<C
listen: "127.0.0.1:$PORT"
admin_listen: "127.0.0.1:$((PORT + 2000))"
workers: 1
demo: { enabled: true, base_port: $UPSTREAM_PORT }
limits: { max_requests_per_connection: ${MAX_REQUESTS:-0} }
C
"$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); gateway=$!
bench_wait fluxgate "$PORT"
echo "# $(date -u +%FT%TZ) $(nproc) cores; $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$PORT" "$gateway" "${REQUESTS:-200000}" "${HOLD:-5}" "$((PORT + 2000))" "${ADMIN_REQUESTS:-3000}" <<'PY'
import re, socket, sys, threading, time
status_line = re.compile(rb"HTTP/1\.1 (\d\d\d) ")
port, pid, n, hold, admin_port, admin_n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def flood(name, port, path, n, allowed):
    """n pipelined GETs of path on one connection, nothing read for `hold` seconds, then
    every answer read; True when the RSS stayed within 8 MiB and every answer came."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    before = rss_kib()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # as a hostile client would: the answers back up at once
    s.connect(("127.0.0.1", port))
    def send():
        try:
            s.sendall(request * n)
        except OSError as error:
            print("send failed:", error)
    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(hold)  # the client reads nothing meanwhile: that is the test
    held = rss_kib()
    print(f"{name}: gateway RSS {before / 1024:.1f} MiB before, {held / 1024:.1f} MiB after {hold:g} s of {n} pipelined "
          f"GET {path} not read; client still sending: {sender.is_alive()}")
    statuses, tail, start, answered = {}, b"", time.time(), 0
    s.settimeout(30)
    while answered < n:
        data = s.recv(1 << 20)
        if not data:
            break
        data = tail + data
        # Count status lines (a body does not end in CRLF, so they are found anywhere);
        # keep the last few bytes after the last one found, in case one is cut by the read.
        last = 0
        for match in status_line.finditer(data):
            statuses[match[1].decode()] = statuses.get(match[1].decode(), 0) + 1
            answered += 1
            last = match.end()
        tail = data[max(last, len(data) - 12):]
    sender.join()
    s.close()
    print(f"{name}: answers {answered} of {n} in {time.time() - start:.1f} s once read: {statuses}; gateway RSS {rss_kib() / 1024:.1f} MiB")
    return held - before <= 8 * 1024 and answered == n and set(statuses) <= allowed

ok = flood("data port", port, "/health", n, {"200", "503"})
ok = flood("admin listener", admin_port, "/metrics", admin_n, {"200"}) and ok
print("ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
