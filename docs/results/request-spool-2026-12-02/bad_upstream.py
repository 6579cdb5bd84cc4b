#!/usr/bin/env python3
"""Upstreams that fail a spooled body on its way in: `close` reads 100 000 bytes of the
request and closes without answering; `hang` accepts and never reads."""
import socket, sys, threading
port, mode = int(sys.argv[1]), sys.argv[2]
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port)); server.listen(64)
held = []
def serve(c):
    if mode == "close":
        got = 0
        while got < 100_000:
            d = c.recv(65536)
            if not d: break
            got += len(d)
        c.close()
    else:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); held.append(c)
while True:
    c, _ = server.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
