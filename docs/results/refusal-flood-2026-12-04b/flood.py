import socket, sys, time, threading
bad = [b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", b"\x16\x03\x01garbage\r\n\r\n",
       b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"]
counts = {}
lock = threading.Lock()
def worker(n):
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", 8080)); s.settimeout(5)
        s.sendall(bad[i % len(bad)])
        try: line = s.recv(64).split(b"\r\n")[0]
        except Exception as e: line = repr(e).encode()
        s.close()
        with lock: counts[line] = counts.get(line, 0) + 1
ts = [threading.Thread(target=worker, args=(int(sys.argv[1]),)) for _ in range(8)]
t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]
print("flood: %.1f s" % (time.time() - t0)); [print(k, v) for k, v in sorted(counts.items())]
