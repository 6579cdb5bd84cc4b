import collections, socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3)
    s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + b"u" * 70_000)
    socks.append(s)
time.sleep(1)
answers = collections.Counter()
for s in socks:
    try:
        data = s.recv(4096)
        answers[data.split(b"\r\n")[0] + b" " + (data[data.find(b'{"error"'):][:40] if b'{"error"' in data else b"")] += 1
    except socket.timeout:
        answers[b"(no answer yet: spooling)"] += 1
print(dict(answers))
