#!/usr/bin/env python3
"""At max_connections with two event loops (`workers: 2`): ten busy connections on one
loop (requests back to back, never idle), ten idle ones parked on the other — the
gateway's accepts alternate between its loops — then ten newcomers that stay open, so
every one needs a place: half land on the busy loop, where nothing is idle. Prints each
newcomer's status and the gateway's eviction and refusal counters.

    python3 bench/cross_loop_eviction.py .build/release/fluxgate "$(mktemp -d)"

Ports 18931, 20931 and 19931 on 127.0.0.1; stops what it started."""
import json, os, socket, subprocess, sys, threading, time, urllib.request
BIN, W = sys.argv[1], sys.argv[2]
GW, ADMIN, UP = 18931, 20931, 19931
PAIRS = 10
open(f"{W}/gw.yaml", "w").write(f"""listen: "127.0.0.1:{GW}"
admin_listen: "127.0.0.1:{ADMIN}"
workers: 2
demo: {{ enabled: false }}
reload: {{ watch: false }}
health_check: {{ enabled: false }}
rate_limit: {{ global: {{ enabled: false }} }}
limits: {{ max_connections: {2 * PAIRS} }}
timeouts: {{ park_after: 500ms }}
upstreams: [ {{ name: a, url: "http://127.0.0.1:{UP}" }} ]
""")
up = subprocess.Popen([BIN, "demo-upstream", "--port", str(UP), "--instance", "a", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
gw = subprocess.Popen([BIN, "--config", f"{W}/gw.yaml"], stdout=open(f"{W}/gw.log", "w"), stderr=subprocess.STDOUT)
def metrics():
    return urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=5).read().decode()
for _ in range(100):
    try: metrics(); break
    except Exception: time.sleep(0.1)
REQ = b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n"
def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk: return None
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk: return None
        rest += chunk
    return int(head.split(b" ")[1])
stop = threading.Event(); busy_counts = []
def busy_loop(s, index):
    n = 0
    try:
        while not stop.is_set():
            s.sendall(REQ); status = read_answer(s)
            if status is None: break
            n += 1
    except OSError: pass
    busy_counts.append(n)
threads, idle = [], []
for i in range(PAIRS):  # accepts alternate between the two loops: busy on one, idle on the other
    b = socket.create_connection(("127.0.0.1", GW)); t = threading.Thread(target=busy_loop, args=(b, i)); t.start(); threads.append(t)
    time.sleep(0.02)
    c = socket.create_connection(("127.0.0.1", GW)); c.sendall(REQ); assert read_answer(c) == 200; idle.append(c)
    time.sleep(0.02)
time.sleep(1.5)  # the idle ones park (park_after 500ms)
m = metrics()
parked = [l for l in m.splitlines() if "parked" in l and not l.startswith("#")]
print("before newcomers:", parked)
statuses, newcomers = [], []
for i in range(PAIRS):  # each stays open, so each needs a place of its own
    s = socket.create_connection(("127.0.0.1", GW)); s.settimeout(5)
    try:
        s.sendall(REQ); statuses.append(read_answer(s))
    except OSError as e: statuses.append(type(e).__name__)
    newcomers.append(s); time.sleep(0.03)
print("newcomers' statuses:", statuses)
closed = 0
for c in idle:
    c.settimeout(0.5)
    try:
        if c.recv(1) == b"": closed += 1
    except socket.timeout: pass
    except OSError: closed += 1
print(f"idle connections closed by the gateway: {closed} of {PAIRS}")
m = metrics()
for l in m.splitlines():
    if l.startswith("fluxgate_connections_evicted_total") or l.startswith('fluxgate_connections_refused_total{reason="max_connections"}'): print(l)
stop.set(); [t.join() for t in threads]
print("busy connections' requests:", sorted(busy_counts)[:3], "...", "all still served" if len(busy_counts) == PAIRS and min(busy_counts) > 0 else "")
gw.terminate(); up.terminate(); gw.wait(); up.wait()
