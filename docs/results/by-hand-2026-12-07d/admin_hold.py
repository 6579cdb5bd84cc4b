# Holds N keep-alive connections to the admin listener, each after one answered GET /healthz,
# then asks /healthz on a fresh connection (as a kubelet probe would) and prints the answer.
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(n):
    s = socket.create_connection((host, port)); s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data: data += s.recv(4096)
    held.append(s)
print(f"{n} keep-alive connections held idle after one answered GET /healthz each")
for t in range(3):
    p = socket.create_connection((host, port)); p.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
    ans = b""
    while True:
        c = p.recv(4096)
        if not c: break
        ans += c
    head, _, body = ans.partition(b"\r\n\r\n")
    print("probe %d: %s  body: %r" % (t + 1, head.split(b"\r\n")[0].decode(), body.decode().strip()))
    p.close(); time.sleep(0.5)
alive = 0
for s in held:
    s.settimeout(0.2)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); d = s.recv(4096); alive += 1 if d else 0
    except Exception: pass
print(f"held connections still answered afterwards: {alive} of {n}")
