"""Three probes of a TLS listener on 127.0.0.1:18951: a connection that says nothing, one
that sends half a ClientHello, one that sends plain HTTP; how long until the gateway
answers or closes, and what it sent."""
import socket, time, sys
def probe(kind):
    s = socket.create_connection(("127.0.0.1", 18951))
    if kind == "half-hello":
        # A TLS record header promising 512 bytes of handshake, and 5 of them.
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03]))
    elif kind == "plain-http":
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    t0 = time.time(); s.settimeout(30)
    try:
        data = s.recv(4096)
        print(f"{kind:12s} after {time.time()-t0:.2f} s: {len(data)} bytes {data[:60]!r}")
    except Exception as e:
        print(f"{kind:12s} after {time.time()-t0:.2f} s: {type(e).__name__}")
for k in ["silent", "half-hello", "plain-http"]: probe(k)
