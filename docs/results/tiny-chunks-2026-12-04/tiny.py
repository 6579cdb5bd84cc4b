"""POSTs with a chunked body of CHUNK-byte chunks carrying PAYLOAD bytes, CONNS at once
(one thread each), to 127.0.0.1:18811; prints the time taken and the status lines.
usage: tiny.py CHUNK PAYLOAD CONNS"""
import socket, sys, threading, time
n, payload, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])  # chunk size, payload bytes, concurrent
chunk = b"%x\r\n" % n + b"x" * n + b"\r\n"
body = chunk * (payload // n) + b"0\r\n\r\n"
req = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
results = []
def one():
    s = socket.create_connection(("127.0.0.1", 18811)); s.sendall(req); s.settimeout(30)
    d = b""
    while b"\r\n\r\n" not in d:
        x = s.recv(65536)
        if not x: break
        d += x
    results.append(d.split(b"\r\n")[0]); s.close()
t0 = time.time()
ts = [threading.Thread(target=one) for _ in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"chunk {n} B, payload {payload} B ({len(req)} on the wire) x {conns}: {time.time()-t0:.2f}s", set(results))
