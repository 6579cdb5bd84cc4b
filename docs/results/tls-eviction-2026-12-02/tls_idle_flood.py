#!/usr/bin/env python3
"""By-hand (2026-12-02): HOLD TLS clients each make one keep-alive request and stay
idle; after WAIT seconds NEW other clients each make one request. Prints what the
newcomers got and how many of the idle ones the gateway closed.
Usage: tls_idle_flood.py PORT HOLD NEW WAIT"""
import socket, ssl, sys, time, collections
port, hold, new, wait = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def request(s, close):
    """One request; reads its whole answer (head and Content-Length body) so that
    nothing of it is mistaken later for a sign of the connection's state."""
    s.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data.split(b"\r\n")[0]
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(body) < length:
        body += s.recv(4096)
    return head.split(b"\r\n")[0]
idle = []
for _ in range(hold):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    assert request(s, False).startswith(b"HTTP/1.1 200"); idle.append(s)
time.sleep(wait)
got = collections.Counter()
newcomers = []  # kept open: each one needs a place under the cap
for _ in range(new):
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"); s.settimeout(3)
        got[request(s, False) or b"(closed)"] += 1; newcomers.append(s)
    except (OSError, ssl.SSLError) as e:
        got[type(e).__name__] += 1
closed = 0
for s in idle:
    s.settimeout(1)
    try:
        if s.recv(1) == b"": closed += 1
    except socket.timeout: pass
    except (OSError, ssl.SSLError): closed += 1
print(f"{hold} idle TLS clients, then {new} newcomers after {wait}s: {dict(got)}; idle ones closed by the gateway: {closed}")
