import socket, sys, time, json, urllib.request
port, pid, n, secs, admin = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
def stats():
    return json.load(urllib.request.urlopen(f"http://{admin}/stats", timeout=2))["connections"]
before = rss()
head = b"PUT /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n"
socks = []
for i in range(n):
    s = socket.socket(); s.connect(("127.0.0.1", port)); s.sendall(head + b"b" * 60000); socks.append(s)
print(f"# {n} connections, each sent a PUT head with Content-Length 65536 and 60 000 body bytes, then one byte every 5 s; RSS before {before:.1f} MiB", flush=True)
start = time.time(); last = 0; tick = 0
while time.time() - start < secs:
    t = int(time.time() - start)
    if t >= tick + 5:
        tick = t
        for s in socks:
            try: s.send(b"b")
            except OSError: pass
    if t > last:
        last = t
        c = stats()
        print(f"t+{t}s RSS {rss():.1f} MiB; client connections {c['client']}, stalled_bytes {c['stalled_bytes']/1048576:.1f} MiB, stalled_closed {c['stalled_closed']}", flush=True)
    time.sleep(0.2)
for s in socks: s.close()
