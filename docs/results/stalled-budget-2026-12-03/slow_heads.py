import socket, sys, time, json, urllib.request
port, pid, n, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
def stats(): return json.load(urllib.request.urlopen("http://127.0.0.1:19090/stats", timeout=2))["connections"]
before = rss(); socks = []
for i in range(n):
    s = socket.socket(); s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 15000); socks.append(s)
print(f"# {n} connections, each 15 KB of a request head that never ends (slowloris); RSS before {before:.1f} MiB", flush=True)
for t in range(1, secs + 1):
    time.sleep(1); c = stats()
    print(f"t+{t}s RSS {rss():.1f} MiB; client connections {c['client']}, stalled_bytes {c['stalled_bytes']/1048576:.1f} MiB, stalled_closed {c['stalled_closed']}", flush=True)
