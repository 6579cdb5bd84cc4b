#!/usr/bin/env python3
"""By-hand probe (2026-12-02): N connections each declare a 1 MB body, send 70 000
bytes of it and stall; a second later M other clients send one GET each. Prints the
GETs' status lines and, when asked, completes every upload and prints their answers.
Usage: stalled_uploads.py PORT [N=30] [M=10] [--complete]"""
import collections, socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
m = int(sys.argv[3]) if len(sys.argv) > 3 else 10
uploads = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + b"u" * 70_000)
    uploads.append(s)
time.sleep(1)
statuses = collections.Counter()
for _ in range(m):
    c = socket.create_connection(("127.0.0.1", port)); c.settimeout(5)
    c.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    statuses[c.recv(4096).split(b"\r\n")[0]] += 1
    c.close()
print("GETs while the uploads stall:", dict(statuses))
if "--complete" in sys.argv:
    answers = collections.Counter()
    for s in uploads:
        s.sendall(b"u" * (1_000_000 - 70_000))
    for s in uploads:
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(body) < length:
            body += s.recv(1 << 20)
        answers[(head.split(b"\r\n")[0], len(body), body == b"u" * 1_000_000)] += 1
    print("uploads completed (status, echoed bytes, byte-exact):", dict(answers))
