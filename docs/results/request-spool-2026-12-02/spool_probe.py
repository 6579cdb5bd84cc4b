#!/usr/bin/env python3
"""By-hand probe of request spooling (2026-12-02) against a gateway on PORT whose
upstream echoes POST bodies (edge-by-hand-2026-12-02/echo_upstream.py).
Usage: spool_probe.py PORT ADMIN_PORT CASE...
Cases: chunked (a 3 MB chunked upload echoed byte-exact), toolarge (a chunked body past
max_body_bytes: 413), parallel N (N concurrent 1 MB uploads), aborts N (N uploads
abandoned half-way), churn N (N sequential 200 KB uploads), full (one 2 MB upload)."""
import concurrent.futures, os, random, socket, sys, urllib.request

port, admin = int(sys.argv[1]), int(sys.argv[2])

def stats():
    import json
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats"))["request_spool"]

def fds():
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
    return int(float([l for l in text.splitlines() if l.startswith("process_open_fds ")][0].split()[1]))

def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
    length = int(length[0].split(b":")[1]) if length else 0
    while len(body) < length:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    return head, body

def post(body, chunked=False, chunk=65536):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
    if chunked:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
    else:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    head, answer = read_answer(s)
    s.close()
    return head.split(b"\r\n")[0], answer

args = sys.argv[3:]
while args:
    case = args.pop(0)
    if case == "chunked":
        body = os.urandom(3_000_000)
        status, answer = post(body, chunked=True, chunk=50_000)
        print("chunked 3 MB:", status, "echoed", len(answer), "byte-exact", answer == body, "spool", stats())
    elif case == "toolarge":
        status, answer = post(os.urandom(12_000_000), chunked=True)
        print("chunked 12 MB (max_body_bytes 10 MiB):", status, answer[:80], "spool", stats())
    elif case == "parallel":
        n = int(args.pop(0))
        bodies = [os.urandom(1_000_000) for _ in range(n)]
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(post, bodies))
        exact = sum(1 for (status, answer), body in zip(results, bodies) if answer == body)
        print(f"parallel {n} x 1 MB: statuses", sorted(set(r[0] for r in results)), "byte-exact", exact, "spool", stats())
    elif case == "aborts":
        n = int(args.pop(0)); before = fds()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 500_000)
            s.close()
        import time; time.sleep(1)
        print(f"aborts {n}: open fds before {before} after {fds()}", "spool", stats())
    elif case == "churn":
        n = int(args.pop(0)); before = fds(); ok = 0
        body = os.urandom(200_000)
        for _ in range(n):
            status, answer = post(body)
            ok += answer == body
        print(f"churn {n} x 200 KB: byte-exact {ok}, open fds before {before} after {fds()}", "spool", stats())
    elif case == "full":
        status, answer = post(os.urandom(2_000_000))
        print("2 MB onto a 1 MiB spool directory:", status, answer[:120], "spool", stats())
