import socket, sys
port = int(sys.argv[1])
for line in ["BREW /pot HTTP/1.1", "get / HTTP/1.1", "M-SEARCH * HTTP/1.1", "PRI * HTTP/2.0", "A"*33 + " / HTTP/1.1"]:
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3)
    s.sendall((line + "\r\nHost: h\r\nConnection: close\r\n\r\n").encode())
    try: got = s.recv(300).split(b"\r\n")[0].decode()
    except Exception as e: got = repr(e)
    print("%-24r %s" % (line[:24], got)); s.close()
