#!/usr/bin/env python3
"""An upstream whose keep-alive connections go stale: each connection answers its first
request (200, body = sha256 of the request body, keep-alive), then closes without an
answer as soon as a second request arrives on it — the race of an upstream's keep-alive
timeout firing just as the proxy picks the pooled connection. Usage: PORT"""
import hashlib, socket, sys, threading

def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    return (head, rest[:length]), rest[length:]

def serve(conn):
    with conn:
        request, buf = read_request(conn, b"")
        if request is None:
            return
        head, body = request
        digest = hashlib.sha256(body).hexdigest().encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(digest), digest))
        # The second request on this connection: closed unanswered.
        while b"\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(128)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
