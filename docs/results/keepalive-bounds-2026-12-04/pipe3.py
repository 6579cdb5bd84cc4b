"""Sends N (3) pipelined GET /health in one write to 127.0.0.1:PORT and prints what
came back: the status lines and Connection fields in order, and how the server ended
the connection."""
import re, socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n" * n)
data = b""; t0 = time.time()
s.settimeout(5)
try:
    while True:
        b = s.recv(65536)
        if not b: print(f"  server closed the connection after {time.time()-t0:.3f} s"); break
        data += b
except ConnectionResetError: print("  reset by server")
except socket.timeout: print("  no close within 5 s")
text = data.decode("latin-1")
found = re.findall(r"HTTP/1\.1 \d{3}[^\r]*|(?i:connection:[^\r]*)", text)
print(f"  responses: {sum(1 for f in found if f.startswith('HTTP/'))}")
for item in found: print("  " + item)
