import socket, sys, time
port = int(sys.argv[1]); size = int(sys.argv[2])
t = time.monotonic()
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
try:
    s.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size)
    print("answer:", s.recv(4096).split(b"\r\n")[0], f"after {time.monotonic() - t:.1f} s")
except OSError as e:
    print("error:", e)
