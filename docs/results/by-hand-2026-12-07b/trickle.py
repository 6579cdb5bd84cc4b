# A byte a second into a 100-byte upload, against timeouts.request: 3s (client_body 30 s never runs out)
import socket, time, sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.settimeout(0.5)
s.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
t0=time.time(); d=b""
while time.time()-t0<10:
    try: s.sendall(b"x")
    except Exception as e: print("send error", e); break
    try:
        c=s.recv(65536)
        if not c: print("closed by the gateway at %.1f s" % (time.time()-t0)); break
        d+=c
    except socket.timeout: pass
print(d.decode(errors="replace"))
