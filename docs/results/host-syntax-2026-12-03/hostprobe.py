import socket, sys
port = int(sys.argv[1])
for h in ["a..b", ".a", "[::1", "h:x", ":80", "", "a:b:c", "a%zz", "example.com.", "[::1]x", "a[b"]:
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3)
    s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % h).encode())
    try: line = s.recv(200).split(b"\r\n")[0].decode()
    except Exception as e: line = repr(e)
    print("%-14r %s" % (h, line)); s.close()
