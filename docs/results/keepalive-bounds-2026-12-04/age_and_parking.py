"""By hand on the release build: keep-alive bounds as a client sees them over time.
  age      a gateway with timeouts.max_connection_age 2s: one keep-alive connection,
           GET /health every 0.7 s; which answer says Connection: close, and when.
  parking  a gateway with limits.max_requests_per_connection 3 and timeouts.park_after
           1s: one connection, a request, 1.5 s quiet (the gateway's metrics must show it
           parked), again, and a third: the third answer must say close — the count
           went on through two wake-ups.
Usage: python3 age_and_parking.py age|parking PORT ADMIN_PORT"""
import re, socket, sys, time, urllib.request

mode, port, admin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def parked():
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
    return int(float(re.search(r"^fluxgate_client_connections_parked (\S+)", text, re.M).group(1)))

def ask(s):
    s.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(rest) < length:
        rest += s.recv(4096)
    return head.split(b"\r\n")[0].decode(), b"connection: close" in head.lower()

s = socket.create_connection(("127.0.0.1", port))
start = time.monotonic()
for n in range(1, 10):
    status, close = ask(s)
    print(f"  request {n} at {time.monotonic() - start:4.1f} s: {status}{'  Connection: close' if close else ''}")
    if close:
        s.settimeout(2)
        print(f"  then the gateway closed the connection: {s.recv(1) == b''}")
        break
    if mode == "age":
        time.sleep(0.7)
    else:
        time.sleep(1.5)
        print(f"  quiet 1.5 s: parked connections at the gateway: {parked()}")
