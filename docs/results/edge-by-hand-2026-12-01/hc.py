import socket, sys, time
port = int(sys.argv[1]); path = sys.argv[2] if len(sys.argv) > 2 else "/health"
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode()); s.shutdown(socket.SHUT_WR)
t0 = time.time(); out = b""
try:
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
except Exception as e: out += repr(e).encode()
print(f"{time.time()-t0:.2f}s", out.split(b"\r\n")[0])
