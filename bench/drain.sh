#!/usr/bin/env bash
# Graceful drain (a measurement with a verdict): SLOW requests of SLOW_MS each in
# flight through Fluxgate, plus IDLE idle keep-alive connections; then SIGTERM.
# Every in-flight request must complete with 200, the idle connections must be closed
# by the gateway (not reset), the process must exit 0 within drain_timeout, and its
# log must report the drain.
# Needs curl (apt); builds Fluxgate in release mode.
# Env: SLOW (100), SLOW_MS (3000), IDLE (20), GW_PORT (18901).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SLOW=${SLOW:-100}; SLOW_MS=${SLOW_MS:-3000}; IDLE=${IDLE:-20}
GW=${GW_PORT:-18901}; ADMIN=$((GW + 2000)); UP=19901
bench_need curl "apt-get install -y curl"
bench_ports_free "$GW" "$ADMIN" "$UP"
bench_setup drain

"$BIN" demo-upstream --port "$UP" --workers 1 --latency-ms "$SLOW_MS" >"$W/up.log" 2>&1 & pids+=($!)
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:$GW"
admin_listen: "127.0.0.1:$ADMIN"
workers: 1
drain_timeout: 30s
health_check: { enabled: false }   # every path of the slow upstream takes SLOW_MS, /health too
demo: { enabled: false }
upstreams: [ { name: slow, url: "http://127.0.0.1:$UP" } ]
C
"$BIN" --config "$W/gw.yaml" >"$W/gw.out" 2>"$W/gw.err" & gw=$!; pids+=("$gw")
bench_wait gateway "$ADMIN" /healthz

clients=0
python3 - "$GW" "$ADMIN" "$SLOW" "$IDLE" "$gw" <<'PY' || clients=1
import json, os, signal, socket, sys, threading, time, urllib.request
port, admin, slow, idle, pid = map(int, sys.argv[1:])
results = []
def request():
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
            if length and len(body) >= length[0]: break
        status = data.split(b" ", 2)[1].decode()
        close = b"connection: close" in data.lower()
        results.append((status, close))
    except Exception as e:
        results.append((f"error {e!r}", False))
# Idle keep-alive connections: one request answered on each (SLOW_MS, in parallel), then nothing.
idle_socks = []
for _ in range(idle):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    idle_socks.append(s)
for s in idle_socks:
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"}")): data += s.recv(65536)
threads = [threading.Thread(target=request) for _ in range(slow)]
for t in threads: t.start()
deadline = time.time() + 10
while time.time() < deadline:
    stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats"))
    if stats["admission"]["in_flight"] >= slow: break
    time.sleep(0.05)
print(f"in flight before SIGTERM: {stats['admission']['in_flight']}")
t0 = time.time()
os.kill(pid, signal.SIGTERM)
for t in threads: t.join()
print(f"slow requests: {sum(1 for s, _ in results if s == '200')} of {slow} answered 200, "
      f"{sum(1 for _, c in results if c)} with Connection: close, "
      f"{sum(1 for s, _ in results if s != '200')} failed; last answer {time.time() - t0:.2f} s after SIGTERM")
closed, reset = 0, 0
for s in idle_socks:
    s.settimeout(10)
    try:
        while s.recv(65536): pass
        closed += 1
    except ConnectionResetError: reset += 1
print(f"idle connections: {closed} closed by the gateway, {reset} reset")
ok = sum(1 for s, _ in results if s == "200") == slow and reset == 0 and closed == idle
sys.exit(0 if ok else 1)
PY
set +e
wait "$gw"; code=$?
set -e
echo "gateway exit code: $code"
grep -E "drain|signal|SIG" "$W/gw.err" | sed 's/^/log: /'
if [ "$clients" -eq 0 ] && [ "$code" -eq 0 ] && grep -q "drained: every client connection and tunnel closed" "$W/gw.err"; then echo "verdict: PASS"; else echo "verdict: FAIL"; exit 1; fi
