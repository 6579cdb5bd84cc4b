import socket, ssl, sys, time, json, threading, urllib.request
port, pid, n, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
payload = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
def stats(): return json.load(urllib.request.urlopen("http://127.0.0.1:19090/stats", timeout=2))["connections"]
before = rss()
def client():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect(("127.0.0.1", port))
    t = ctx.wrap_socket(s); t.settimeout(secs + 5)
    try: t.sendall(payload)
    except OSError: pass
    time.sleep(secs + 5)
threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
for t in threads: t.start()
print(f"# {n} TLS connections, each pipelining {len(payload)} bytes of GET /health, reading nothing; RSS before {before:.1f} MiB", flush=True)
for t in range(1, secs + 1):
    time.sleep(1); c = stats()
    print(f"t+{t}s RSS {rss():.1f} MiB; client connections {c['client']}, stalled_bytes {c['stalled_bytes']/1048576:.1f} MiB, stalled_closed {c['stalled_closed']}", flush=True)
