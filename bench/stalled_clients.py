# N connections that make the gateway hold memory for them, for SECS seconds, printing the
# gateway's RSS and its stalled-client figures (/stats) every second. MODE `pipeline`:
# each pipelines 2 000 "GET /health" (SO_RCVBUF 4096) and reads nothing; `uploads`: each
# sends a PUT head with Content-Length 65536 and 60 000 body bytes, then a byte every 5 s
# (a slow upload holding a body read before admission). With LIMIT (limits.stalled_client_bytes in force): exits 1 when what the
# gateway held went past it by more than one connection's worth (~200 KiB), or when it
# closed nothing (pick a LIMIT the clients pass: the default run holds ~55 MiB unbounded).
# Usage: python3 stalled_clients.py PORT PID N SECS ADMIN [LIMIT [MODE]]   (bench/stalled-clients.sh)
import socket, sys, time, json, urllib.request
port, pid, n, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
admin = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1:19090"
limit = int(sys.argv[6]) if len(sys.argv) > 6 and int(sys.argv[6]) > 0 else None
mode = sys.argv[7] if len(sys.argv) > 7 else "pipeline"
if mode == "uploads":
    payload = b"PUT /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n" + b"b" * 60000
    what = "a PUT head (Content-Length 65536) and 60 000 body bytes, then a byte every 5 s"
else:
    payload = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    what = f"pipelining {len(payload)} bytes of GET /health, reading nothing"
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
def stats():
    try:
        return json.load(urllib.request.urlopen(f"http://{admin}/stats", timeout=2))["connections"]
    except Exception as e:
        return {"error": str(e)}
before = rss()
socks = []
for i in range(n):
    s = socket.socket()
    if mode != "uploads":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    socks.append([s, 0])
print(f"# {n} connections ({mode}), each {what}; RSS before {before:.1f} MiB", flush=True)
start = time.time()
last, trickled = 0, 0
peak_held, peak_rss, closed = 0, before, 0
while time.time() - start < secs:
    for entry in socks:
        s, sent = entry
        if sent < len(payload):
            try:
                entry[1] += s.send(payload[sent:sent + 65536])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                entry[1] = len(payload)
    t = int(time.time() - start)
    if mode == "uploads" and t >= trickled + 5:
        trickled = t
        for entry in socks:
            if entry[1] >= len(payload):
                try:
                    entry[0].send(b"b")
                except OSError:
                    pass
    if t > last:
        last = t
        c = stats()
        now = rss()
        held = c.get("stalled_bytes", 0)
        peak_held, peak_rss, closed = max(peak_held, held), max(peak_rss, now), c.get("stalled_closed", closed)
        print(f"t+{t}s RSS {now:.1f} MiB; client connections {c.get('client')}, stalled_bytes {held / 1048576:.1f} MiB, stalled_closed {c.get('stalled_closed')}", flush=True)
    time.sleep(0.05)
after = rss()
print(f"per connection: {(after - before) * 1024 / n:.1f} KiB (RSS {before:.1f} -> {after:.1f} MiB); peak RSS {peak_rss:.1f} MiB, "
      f"peak held {peak_held / 1048576:.1f} MiB, closed {closed}")
for s, _ in socks: s.close()
if limit:
    ok = peak_held <= limit + 204_800 and closed > 0
    print("ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)
