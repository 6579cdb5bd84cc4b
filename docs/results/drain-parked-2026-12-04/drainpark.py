# Parked connections whose next request is already in the kernel when the drain starts:
# every one must be answered (the drain serves a connection whose request waits), none reset.
import socket, sys, time, json, urllib.request, os, signal, subprocess
N = int(sys.argv[1]); pid = int(sys.argv[2]); mode = sys.argv[3]  # drain | nodrain
REQ = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: return None, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length": length = int(v)
    while len(rest) < length:
        d = s.recv(65536)
        if not d: return None, buf
        rest += d
    return head, rest
socks = []
for i in range(N):
    s = socket.create_connection(("127.0.0.1", 18771)); s.sendall(REQ)
    h, _ = read_response(s); assert h and h.startswith(b"HTTP/1.1 200"), h
    socks.append(s)
time.sleep(2.5)
stats = json.load(urllib.request.urlopen("http://127.0.0.1:20771/stats"))
parked = stats["connections"]["client_parked"]
for s in socks: s.sendall(REQ)
if mode == "drain": os.kill(pid, signal.SIGTERM)
ok = close_hdr = 0; errors = {}
for s in socks:
    s.settimeout(15)
    try:
        h, _ = read_response(s)
        if h is None: errors["eof"] = errors.get("eof", 0) + 1
        elif h.startswith(b"HTTP/1.1 200"):
            ok += 1
            if b"connection: close" in h.lower(): close_hdr += 1
        else: errors[h.split(b"\r\n")[0].decode()] = errors.get(h.split(b"\r\n")[0].decode(), 0) + 1
    except Exception as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
print(json.dumps({"mode": mode, "connections": N, "parked_before": parked, "answered_200": ok, "with_connection_close": close_hdr, "errors": errors}))
